// Callscribe's live pages: the call list, the call page and the admin's live transcript panel all load
// this one module. Data from the server is only ever rendered with textContent, never innerHTML.
//
// Live feed (streaming/live_feed.py LiveFeedConsumer): ws/calls/ sends {"type": "calls"} then deltas;
// ws/calls/<id>/?after=N sends a snapshot (or "resume") with the final segments numbered above N, then
// deltas in sequence order. Segments are deduplicated by sequence here as well, so a reconnect never
// repeats a line.
//
// The call page renders what the server describes and decides nothing itself: the snapshot, and the
// "view" message that follows every call and stream event, carry the page's description of the call
// (calls/display.py call_view: labels, which controls apply, participants, audio tracks, gaps, whether
// the call is live), the same one the page was rendered from, and segments carry their clock text.

const SESSION_ENDED_CODE = 4401;
const OUT_OF_SCOPE_CODE = 4404; // the call is no longer in the viewer's scope (calls/permissions.py)
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];
const ENDED_STATES = new Set(["disconnected", "failed", "unanswered"]);
const FOLLOW_SLACK_PX = 48;

// --- small helpers ----------------------------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// The one text the page makes itself: a live call's duration, ticking between server messages, in the
// form calls/display.py clock gives every other time.
function runningClock(milliseconds) {
  const total = Math.max(0, Math.floor((milliseconds || 0) / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

function callLabel(call) {
  return call.label || call.id;
}

function statusLabel(value) {
  return value ? value.charAt(0).toUpperCase() + value.slice(1) : "";
}

function readJson(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : {};
}

const stateLabels = readJson("call-state-labels");

function stateLabel(state) {
  return stateLabels[state] || statusLabel(state);
}

// Durations tick once a second: any element with data-since (and data-until once the call ended).
function tickDurations() {
  for (const node of document.querySelectorAll("[data-since]")) {
    const since = Date.parse(node.dataset.since);
    const until = node.dataset.until ? Date.parse(node.dataset.until) : Date.now();
    if (!Number.isNaN(since)) node.textContent = runningClock(until - since);
  }
}

// --- the socket -------------------------------------------------------------------------------

const STATUS_TEXT = {
  connecting: "Connecting…",
  live: "Live updates on",
  "call-ended": "The call has ended",
  reconnecting: "Connection lost, reconnecting…",
  "session-ended": "Your session has ended. Reload the page to log in again.",
  "out-of-scope": "You may no longer see this call.",
};

// The socket's own state; a call page whose call has ended says so instead of "live".
const socketStatus = { state: "connecting", callEnded: false };

function showStatus(state) {
  socketStatus.state = state;
  const shown = state === "live" && socketStatus.callEnded ? "call-ended" : state;
  for (const node of document.querySelectorAll("[data-live-status]")) {
    node.textContent = STATUS_TEXT[shown] || shown;
    node.dataset.state = shown;
  }
}

class LiveSocket {
  constructor(path, onMessage, resumeAfter) {
    this.path = path;
    this.onMessage = onMessage;
    this.resumeAfter = resumeAfter;
    this.failures = 0;
    this.connections = 0;
    this.socket = null;
  }

  connect() {
    const url = new URL(this.path, window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    const after = this.resumeAfter ? this.resumeAfter() : null;
    if (after !== null) url.searchParams.set("after", String(after));
    const socket = new WebSocket(url);
    this.socket = socket;
    showStatus(this.connections ? "reconnecting" : "connecting");
    socket.addEventListener("open", () => {
      this.failures = 0;
      this.connections += 1;
      showStatus("live");
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onMessage(message);
    });
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    if (event.code === SESSION_ENDED_CODE) {
      showStatus("session-ended");
      return;
    }
    if (event.code === OUT_OF_SCOPE_CODE) {
      showStatus("out-of-scope");
      return;
    }
    const delay = RECONNECT_DELAYS_MS[Math.min(this.failures, RECONNECT_DELAYS_MS.length - 1)];
    this.failures += 1;
    showStatus("reconnecting");
    window.setTimeout(() => this.connect(), delay);
  }
}

// --- the call list ----------------------------------------------------------------------------

const ROW_FIELDS = [
  ["direction", "Direction"],
  ["state", "State"],
  ["last", "Last said"],
  ["duration", "Duration"],
  ["media_streaming_status", "Streaming"],
  ["transcription_status", "Transcription"],
];

class CallList {
  constructor(root) {
    this.rows = root.querySelector("[data-live-rows]");
    this.emptyRow = root.querySelector("[data-empty-row]");
  }

  handle(message) {
    if (message.type === "calls") {
      const live = new Set(message.calls.map((call) => call.id));
      for (const row of this.rows.querySelectorAll("tr[data-call-id]")) {
        if (!live.has(row.dataset.callId)) row.remove();
      }
      for (const call of [...message.calls].reverse()) this.update(call);
    } else if (message.type === "call") {
      this.update(message.call);
    } else if (message.type === "segment") {
      const row = this.row(message.call_id);
      if (row) this.field(row, "last").textContent = `${message.segment.speaker}: ${message.segment.text}`;
    } else if (message.type === "stream") {
      const row = this.row(message.call_id);
      const field = message.stream.kind === "audio" ? "media_streaming_status" : "transcription_status";
      if (row) this.field(row, field).textContent = message.stream.connected ? "Active" : "Disconnected";
    }
    this.emptyRow.hidden = this.rows.querySelector("tr[data-call-id]") !== null;
  }

  row(callId) {
    return this.rows.querySelector(`tr[data-call-id="${CSS.escape(callId)}"]`);
  }

  field(row, name) {
    return row.querySelector(`[data-field="${name}"]`);
  }

  update(call) {
    const row = this.row(call.id) || this.addRow(call);
    this.field(row, "caller").textContent = callLabel(call);
    this.field(row, "direction").textContent = statusLabel(call.direction);
    this.field(row, "state").textContent = stateLabel(call.state);
    this.field(row, "media_streaming_status").textContent = statusLabel(call.media_streaming_status);
    this.field(row, "transcription_status").textContent = statusLabel(call.transcription_status);
    const duration = this.field(row, "duration");
    duration.dataset.since = call.connected_at || call.created_at;
    if (call.ended_at) duration.dataset.until = call.ended_at;
    row.classList.toggle("ended", ENDED_STATES.has(call.state));
  }

  addRow(call) {
    const row = element("tr");
    row.dataset.callId = call.id;
    const heading = element("th");
    heading.scope = "row";
    heading.dataset.label = "Caller";
    const link = element("a");
    link.href = `/calls/${encodeURIComponent(call.id)}/`;
    link.dataset.field = "caller";
    heading.append(link);
    row.append(heading);
    for (const [name, label] of ROW_FIELDS) {
      const cell = element("td");
      cell.dataset.field = name;
      cell.dataset.label = label;
      row.append(cell);
    }
    this.rows.prepend(row);
    return row;
  }
}

// --- the transcript ---------------------------------------------------------------------------

class Transcript {
  constructor(panel) {
    this.panel = panel;
    this.list = panel.querySelector("[data-transcript]");
    this.scroller = panel.querySelector("[data-transcript-scroll]");
    this.emptyNote = panel.querySelector("[data-transcript-empty]");
    this.jumpButton = panel.querySelector("[data-jump-latest]");
    this.threshold = Number.parseFloat(panel.dataset.lowConfidence) || 0;
    this.lastSequence = Number.parseInt(panel.dataset.after || "0", 10);
    this.seen = new Set();
    this.finalStarts = new Set();
    for (const line of this.list.querySelectorAll(".line[data-sequence]")) {
      this.seen.add(Number(line.dataset.sequence));
      this.finalStarts.add(`${line.dataset.participant}|${line.dataset.startMs}`);
    }
    this.partials = new Map();
    this.labels = new Map();
    // Rendered only for a user who may reveal redacted data (templates/calls/_transcript.html).
    this.revealControls = new Map([...panel.querySelectorAll("template[data-reveal]")].map((node) => [node.dataset.reveal, node]));
    for (const turn of this.list.querySelectorAll(".turn")) {
      this.labels.set(turn.dataset.participant, turn.querySelector(".speaker").textContent);
    }
    this.listeners = [];
    this.follow = true;
    this.scroller.addEventListener("scroll", () => this.onScroll());
    this.jumpButton.addEventListener("click", () => {
      this.follow = true;
      this.scrollToEnd();
    });
  }

  handle(message) {
    if (message.type === "snapshot" || message.type === "resume") {
      for (const participant of message.participants || []) this.labels.set(participant.raw_id, participant.label);
      for (const segment of message.segments || []) this.addSegment(segment);
    } else if (message.type === "segment") {
      this.addSegment(message.segment);
    } else if (message.type === "partial") {
      this.showPartial(message);
    }
    if (message.view) renderCall(message.view);
    if (Number.isInteger(message.sequence)) this.lastSequence = Math.max(this.lastSequence, message.sequence);
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  changed() {
    this.emptyNote.hidden = this.list.childElementCount > 0;
    if (this.follow) this.scrollToEnd();
    else this.jumpButton.hidden = false;
    for (const listener of this.listeners) listener();
  }

  // Finals: each sequence once; a participant's grey intermediate line is replaced in place.
  addSegment(segment) {
    if (this.seen.has(segment.sequence)) return;
    this.seen.add(segment.sequence);
    const line = this.buildLine(segment);
    this.finalStarts.add(`${line.dataset.participant}|${line.dataset.startMs}`);
    const partial = this.partials.get(segment.participant);
    if (partial && Number(partial.dataset.startMs) > Math.floor(segment.start_ms)) {
      partial.before(line); // the intermediate text already belongs to the next utterance
    } else if (partial) {
      partial.replaceWith(line);
      this.partials.delete(segment.participant);
    } else {
      this.turnFor(segment.participant, segment.speaker).append(line);
    }
    this.nameTurn(line.closest(".turn"), segment);
    const reveal = this.revealControl(segment);
    if (reveal) line.after(reveal);
    this.changed();
  }

  // A turn begun by intermediate text is headed with a name made from the raw id; its first final
  // brings the server's name ("Agent Sam Ortega", "Customer +1…"), as a reload would show it.
  nameTurn(turn, segment) {
    if (!turn || !segment.speaker || turn.dataset.participant !== segment.participant) return;
    turn.querySelector(".speaker").textContent = segment.speaker;
    this.labels.set(segment.participant, segment.speaker);
  }

  // Mirrors templates/calls/_line.html: after a redacted line, the control the server rendered for this
  // kind of original ("kept" or "not_kept"), pointed at this segment. None for a user who may not reveal.
  revealControl(segment) {
    const template = this.revealControls.get(segment.original || "");
    if (!template) return null;
    const control = template.content.firstElementChild.cloneNode(true);
    const form = control.querySelector("form");
    if (form) form.action = form.getAttribute("action").replace("/segments/0/", `/segments/${segment.id}/`);
    return control;
  }

  showPartial(message) {
    const participant = message.participant || "";
    const startMs = Math.floor(message.start_ms || 0);
    if (this.finalStarts.has(`${participant}|${startMs}`)) return; // late: its final is already shown
    let line = this.partials.get(participant);
    if (!message.text) {
      if (line) this.removeLine(line);
      this.partials.delete(participant);
      return;
    }
    if (!line) {
      line = element("p", "line partial");
      line.setAttribute("aria-hidden", "true"); // screen readers hear the final, not every guess
      line.dataset.participant = participant;
      line.append(element("span", "time"), " ", element("span", "text"));
      this.turnFor(participant, null, message.speaker).append(line);
      this.partials.set(participant, line);
    }
    line.dataset.startMs = String(startMs);
    line.querySelector(".time").textContent = message.clock;
    line.querySelector(".text").textContent = message.text;
    this.changed();
  }

  removeLine(line) {
    const turn = line.closest(".turn");
    line.remove();
    if (turn && !turn.querySelector(".line")) turn.remove();
  }

  // A final's speaker is the server's current name for them; intermediate text comes with a name made
  // from the raw id alone (`fallback`), used only when the page has no better one.
  turnFor(participant, speaker, fallback) {
    const last = this.list.lastElementChild;
    if (last && last.dataset.participant === participant) return last;
    const turn = element("li", "turn");
    turn.dataset.participant = participant;
    const label = speaker || this.labels.get(participant) || fallback || "Unknown speaker";
    this.labels.set(participant, label);
    const heading = element("p", "speaker", label);
    heading.title = participant;
    turn.append(heading);
    this.list.append(turn);
    return turn;
  }

  isLowConfidence(confidence) {
    return typeof confidence === "number" && confidence < this.threshold;
  }

  // Mirrors templates/calls/_line.html and calls/display.py segment_words (times floored to whole ms, as there).
  buildLine(segment) {
    const line = element("p", "line");
    line.id = `segment-${segment.sequence}`;
    line.tabIndex = -1;
    line.dataset.sequence = String(segment.sequence);
    line.dataset.participant = segment.participant || "";
    line.dataset.startMs = String(Math.floor(segment.start_ms));
    line.dataset.endMs = String(Math.floor(segment.end_ms));
    const text = element("span", "text");
    const tokens = segment.text.split(/\s+/).filter(Boolean);
    const words = segment.words || [];
    tokens.forEach((token, index) => {
      if (index > 0) text.append(" ");
      if (words.length !== tokens.length) {
        text.append(token);
        return;
      }
      const word = element("span", "word", token);
      word.dataset.startMs = String(Math.floor(words[index].start_ms));
      word.dataset.endMs = String(Math.floor(words[index].end_ms));
      text.append(word);
    });
    line.append(element("span", "time", segment.clock), " ", text);
    if (this.isLowConfidence(segment.confidence)) {
      line.classList.add("low-confidence");
      line.append(" ", element("span", "confidence-note", `low confidence (${Math.round(segment.confidence * 100)}%)`));
    }
    return line;
  }

  onScroll() {
    const scroller = this.scroller;
    this.follow = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < FOLLOW_SLACK_PX;
    if (this.follow) this.jumpButton.hidden = true;
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.jumpButton.hidden = true;
  }

  // A search hit links to /calls/<id>/?t=<ms>#segment-<sequence>: show and highlight that moment.
  showTarget() {
    const params = new URLSearchParams(window.location.search);
    const hash = window.location.hash;
    let line = hash.startsWith("#segment-") ? document.getElementById(hash.slice(1)) : null;
    const at = params.get("t") ?? (hash.startsWith("#t=") ? hash.slice(3) : null);
    if (!line && at !== null) {
      for (const candidate of this.list.querySelectorAll(".line[data-sequence]")) {
        if (Number(candidate.dataset.startMs) <= Number(at)) line = candidate;
      }
    }
    if (!line) {
      this.scrollToEnd();
      return null;
    }
    line.classList.add("target");
    this.follow = false;
    line.scrollIntoView({ block: "center" });
    line.focus({ preventScroll: true });
    this.jumpButton.hidden = false;
    return line;
  }
}

const callListeners = [];

function setCallField(name, value) {
  for (const node of document.querySelectorAll(`[data-call-field="${name}"]`)) node.textContent = value;
}

// Mirrors templates/calls/call_detail.html: both render calls/display.py call_view.
function renderCall(view) {
  setCallField("state", view.state);
  setCallField("media_streaming_status", view.media_streaming_status);
  setCallField("transcription_status", view.transcription_status);
  setCallField("coverage", view.coverage);
  setCallField("end_reason", view.end_reason);
  setCallField("pause", view.pause);
  for (const name of ["end_reason", "pause"]) {
    for (const node of document.querySelectorAll(`[data-shown-with="${name}"]`)) node.hidden = !view[name];
  }
  setCallField("ended_at", view.ended_at || "still live");
  if (!view.live) {
    for (const node of document.querySelectorAll('[data-call-field="duration"]')) delete node.dataset.since;
    setCallField("duration", view.duration);
  }
  for (const node of document.querySelectorAll("[data-participants]")) {
    const names = view.participants.map((participant) => {
      const name = element("span", "participant", participant.label);
      name.title = participant.raw_id;
      return name;
    });
    node.replaceChildren("Participants: ", ...names.flatMap((name, index) => (index ? [", ", name] : [name])));
    node.hidden = names.length === 0;
  }
  renderGaps(view.gaps);
  socketStatus.callEnded = !view.live;
  showStatus(socketStatus.state);
  for (const listener of callListeners) listener(view);
}

function renderGaps(gaps) {
  const rows = document.querySelector("[data-gap-rows]");
  if (!rows) return;
  rows.replaceChildren(
    ...gaps.map((gap) => {
      const row = element("tr", `gap gap-${gap.reason}`);
      for (const [label, text] of [["Reason", gap.reason_label], ["From", gap.from], ["To", gap.to], ["Detail", gap.detail]]) {
        const cell = element("td", "", text);
        cell.dataset.label = label;
        row.append(cell);
      }
      return row;
    }),
  );
  document.querySelector("[data-gaps]").hidden = gaps.length === 0;
  document.querySelector("[data-no-gaps]").hidden = gaps.length > 0;
}

// --- audio: seek from the transcript, highlight the word being played ----------------------------

class AudioSync {
  constructor(panel, transcript) {
    this.audio = panel.querySelector("[data-audio]");
    this.select = panel.querySelector("[data-audio-track]");
    this.download = panel.querySelector("[data-audio-download]");
    this.transcript = transcript;
    this.shiftMs = Number(transcript.panel.dataset.audioShiftMs || 0);
    this.words = null;
    this.current = null;
    this.panel = panel;
    this.select.addEventListener("change", () => this.useTrack(this.select.value));
    callListeners.push((view) => this.showTracks(view.audio_tracks));
    this.audio.addEventListener("timeupdate", () => this.highlight());
    this.audio.addEventListener("seeked", () => this.highlight());
    transcript.onChange(() => {
      this.words = null;
      this.makeLinesFocusable();
    });
    transcript.list.addEventListener("click", (event) => this.seekTo(event.target));
    transcript.list.addEventListener("keydown", (event) => {
      if ((event.key === "Enter" || event.key === " ") && event.target.matches(".line")) {
        event.preventDefault();
        this.seekTo(event.target);
      }
    });
    this.makeLinesFocusable();
  }

  makeLinesFocusable() {
    for (const line of this.transcript.list.querySelectorAll(".line[data-sequence]")) line.tabIndex = 0;
  }

  participant() {
    return this.select.selectedOptions[0]?.dataset.participant || "";
  }

  // Tracks appear as the call is recorded; the one playing stays selected.
  showTracks(tracks) {
    const urls = tracks.map((track) => track.url);
    const shown = [...this.select.options].map((option) => option.value);
    if (urls.join("\n") === shown.join("\n")) return;
    const selected = this.select.value;
    this.select.replaceChildren(
      ...tracks.map((track) => {
        const option = element("option", "", track.label);
        option.value = track.url;
        option.dataset.participant = track.participant_raw_id;
        return option;
      }),
    );
    if (urls.includes(selected)) this.select.value = selected;
    else if (urls.length) this.useTrack(urls[0]);
    this.panel.hidden = urls.length === 0;
  }

  useTrack(url) {
    this.select.value = url;
    this.audio.src = url;
    this.download.href = url;
    this.words = null;
  }

  seekTo(target) {
    const word = target.closest(".word");
    const line = target.closest(".line[data-sequence]");
    if (!line) return;
    const selected = this.participant();
    if (selected && selected !== line.dataset.participant) {
      const option = [...this.select.options].find((item) => item.dataset.participant === line.dataset.participant);
      if (option) this.useTrack(option.value);
    }
    this.play((word || line).dataset.startMs);
  }

  play(startMs) {
    this.cue(startMs, true);
  }

  // Move the player to a transcript offset; play only when the reader asked for it.
  cue(startMs, andPlay = false) {
    const seconds = Math.max(0, (Number(startMs) + this.shiftMs) / 1000);
    const start = () => {
      this.audio.currentTime = seconds;
      if (andPlay) this.audio.play().catch(() => {});
    };
    if (this.audio.readyState >= 1) start();
    else this.audio.addEventListener("loadedmetadata", start, { once: true });
  }

  wordIndex() {
    if (this.words === null) {
      const selected = this.participant();
      const lines = this.transcript.list.querySelectorAll(".line[data-sequence]");
      this.words = [];
      for (const line of lines) {
        if (selected && line.dataset.participant !== selected) continue;
        for (const word of line.querySelectorAll(".word")) {
          this.words.push([Number(word.dataset.startMs), Number(word.dataset.endMs), word]);
        }
      }
    }
    return this.words;
  }

  highlight() {
    const now = this.audio.currentTime * 1000 - this.shiftMs;
    const found = this.wordIndex().find(([start, end]) => start <= now && now < end);
    const word = found ? found[2] : null;
    if (word === this.current) return;
    if (this.current) {
      this.current.classList.remove("current");
      this.current.closest(".line")?.classList.remove("playing");
    }
    this.current = word;
    if (word) {
      word.classList.add("current");
      word.closest(".line").classList.add("playing");
    }
  }
}

// --- controls: POST forms, enhanced with fetch, confirmation and visible feedback ----------------

class Controls {
  constructor(section) {
    this.section = section;
    this.view = null; // the server's latest description of the call
    this.feedback = section.querySelector("[data-control-feedback]");
    for (const form of section.querySelectorAll("form[data-control]")) {
      form.addEventListener("submit", (event) => this.submit(event, form));
    }
    callListeners.push((call) => this.sync(call));
  }

  async submit(event, form) {
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const button = form.querySelector("button");
    button.disabled = true;
    this.say("Working…", "pending");
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: {
          Accept: "application/json",
          "X-Requested-With": "fetch",
          "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value,
        },
      });
      let message = response.statusText;
      try {
        message = (await response.json()).message || message;
      } catch {
        // not JSON: keep the status text
      }
      this.say(message || (response.ok ? "Done." : "Failed."), response.ok ? "ok" : "error");
    } catch (error) {
      this.say(`Could not reach the server: ${error.message}`, "error");
    } finally {
      // As the server last described the call: its event may have come before this answer.
      button.disabled = this.view ? !this.view.controls[form.dataset.control] : false;
    }
  }

  say(text, state) {
    this.feedback.textContent = text;
    this.feedback.dataset.state = state;
  }

  // The server says which controls apply (calls/display.py control_states).
  sync(view) {
    this.view = view;
    for (const form of this.section.querySelectorAll("form[data-control]")) {
      form.querySelector("button").disabled = !view.controls[form.dataset.control];
    }
    this.section.hidden = !view.live;
  }
}

// --- start --------------------------------------------------------------------------------------

function start() {
  const panel = document.querySelector("[data-transcript-panel]");
  const list = document.querySelector("[data-live-list]");
  let live = null;
  let view = null;
  if (panel) {
    view = new Transcript(panel);
    const audioPanel = document.querySelector("[data-audio-panel]");
    const audio = audioPanel ? new AudioSync(audioPanel, view) : null;
    const target = view.showTarget();
    if (target && audio) audio.cue(target.dataset.startMs);
    const controls = document.querySelector("[data-controls]");
    if (controls) new Controls(controls);
    live = new LiveSocket(`/ws/calls/${encodeURIComponent(panel.dataset.callId)}/`, (message) => view.handle(message), () => view.lastSequence);
  } else if (list) {
    view = new CallList(list);
    live = new LiveSocket("/ws/calls/", (message) => view.handle(message), null);
  }
  tickDurations();
  window.setInterval(tickDurations, 1000);
  if (!live) return;
  live.connect();
  // A handle for people debugging in the console, and for the browser tests.
  window.callscribeLive = {
    get socket() {
      return live.socket;
    },
    get connections() {
      return live.connections;
    },
    view,
  };
}

start();
