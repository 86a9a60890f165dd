import { ConversationKind, MessageKind, type ChatConversation, type ChatMessage } from "./chat-store.js";

export function memberName(conv: ChatConversation | undefined, userId: string, me: string): string {
  if (userId === me) return "You";
  const m = conv?.members.find((x) => x.userId === userId);
  return m ? m.displayName || m.username : "Someone";
}

/** A direct chat is named after the other person; a group by its title. */
export function conversationTitle(conv: ChatConversation, me: string): string {
  if (conv.kind === ConversationKind.GROUP) return conv.title || "Untitled group";
  const other = conv.members.find((m) => m.userId !== me);
  return other ? other.displayName || other.username : "Direct chat";
}

export function directPeer(conv: ChatConversation, me: string) {
  return conv.kind === ConversationKind.DIRECT ? conv.members.find((m) => m.userId !== me) : undefined;
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0]![0]! + parts[1]![0]! : (parts[0] ?? "?").slice(0, 2);
  return letters.toUpperCase();
}

/** A stable hue per id, so an avatar keeps its colour everywhere. */
export function hueOf(id: string): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) % 360;
  return h;
}

/** System events as a sentence ("Alice added Bob"); null for text messages. */
export function systemText(conv: ChatConversation | undefined, m: ChatMessage, me: string): string | null {
  const who = memberName(conv, m.senderId, me);
  const subjects = () => m.subjectUserIds.map((id) => memberName(conv, id, me)).join(", ");
  switch (m.kind) {
    case MessageKind.TEXT:
      return null;
    case MessageKind.CONVERSATION_CREATED:
      return `${who} created the conversation`;
    case MessageKind.MEMBERS_ADDED:
      return `${who} added ${subjects()}`;
    case MessageKind.MEMBER_REMOVED:
      return m.subjectUserIds.includes(m.senderId) ? `${who} left` : `${who} removed ${subjects()}`;
    case MessageKind.CONVERSATION_RENAMED:
      return `${who} renamed the group to “${m.body}”`;
    default:
      return null;
  }
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

export function shortTime(ms: number): string {
  if (!ms) return "";
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? timeFormat.format(d) : dayFormat.format(d);
}

export function clockTime(ms: number): string {
  return ms ? timeFormat.format(new Date(ms)) : "";
}
