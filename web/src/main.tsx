import { render } from "solid-js/web";
import { App } from "./components/app.jsx";
import "./styles.css";

render(() => <App />, document.getElementById("root")!);
