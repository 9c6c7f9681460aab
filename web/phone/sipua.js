// A small SIP user agent over WebSocket (RFC 3261, RFC 7118) for the
// Switchboard phone page: registration with digest authentication
// (SHA-256, RFC 8760), one call at a time, in and out, with WebRTC media.
"use strict";

const SIP = (() => {
  const compact = { v: "via", f: "from", t: "to", i: "call-id", m: "contact", l: "content-length", c: "content-type", k: "supported" };
  const enc = new TextEncoder();

  function rand(n) {
    const a = new Uint8Array(n);
    crypto.getRandomValues(a);
    return Array.from(a, b => b.toString(16).padStart(2, "0")).join("");
  }

  // parse turns the text of one WebSocket message into a message object.
  function parse(text) {
    const cut = text.indexOf("\r\n\r\n");
    const head = cut < 0 ? text : text.slice(0, cut);
    const body = cut < 0 ? "" : text.slice(cut + 4);
    const lines = head.split("\r\n");
    const first = lines.shift().split(" ");
    const msg = { headers: [], body };
    if (first[0] === "SIP/2.0") {
      msg.status = parseInt(first[1], 10);
      msg.reason = first.slice(2).join(" ");
    } else {
      msg.method = first[0];
      msg.uri = first[1];
    }
    for (const line of lines) {
      const i = line.indexOf(":");
      if (i < 0) continue;
      let name = line.slice(0, i).trim().toLowerCase();
      name = compact[name] || name;
      msg.headers.push([name, line.slice(i + 1).trim()]);
    }
    msg.get = n => { const h = msg.headers.find(h => h[0] === n); return h ? h[1] : ""; };
    msg.all = n => msg.headers.filter(h => h[0] === n).map(h => h[1]);
    const [seq, method] = msg.get("cseq").split(/\s+/);
    msg.cseq = parseInt(seq, 10);
    msg.cseqMethod = method;
    msg.callId = msg.get("call-id");
    return msg;
  }

  function param(value, name) {
    const m = new RegExp(";\\s*" + name + "=([^;>,\\s]+)", "i").exec(value);
    return m ? m[1] : "";
  }

  // uriOf returns the URI inside a name-addr ("Alice" <sip:a@b>;tag=x).
  function uriOf(value) {
    const m = /<([^>]*)>/.exec(value);
    return m ? m[1] : value.split(";")[0].trim();
  }

  // callerOf returns the display name and user of a From header.
  function callerOf(value) {
    // A quoted display name may hold quoted pairs (\" and \\, RFC 3261 §25.1).
    const quoted = /^\s*"((?:[^"\\]|\\.)*)"/.exec(value);
    const name = quoted ? [quoted[0], quoted[1].replace(/\\(.)/g, "$1")] : /^\s*([^<"]+?)\s*</.exec(value);
    const user = /sips?:([^@;>]+)@/.exec(value);
    return { name: name ? name[1] : "", user: user ? decodeURIComponent(user[1]) : "" };
  }

  async function sha256(s) {
    const d = await crypto.subtle.digest("SHA-256", enc.encode(s));
    return Array.from(new Uint8Array(d), b => b.toString(16).padStart(2, "0")).join("");
  }

  // authorization answers a digest challenge (RFC 7616 §3.4) with SHA-256,
  // or returns "" when the challenge offers no algorithm we do.
  async function authorization(challenges, user, password, method, uri) {
    let chosen = null;
    for (const c of challenges) {
      const p = {};
      c.replace(/^Digest\s+/i, "").replace(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g, (_, k, q, v) => { p[k.toLowerCase()] = q !== undefined ? q : v; });
      if ((p.algorithm || "MD5").toUpperCase() === "SHA-256") { chosen = p; break; }
    }
    if (!chosen) return "";
    const cnonce = rand(8), nc = "00000001";
    const ha1 = await sha256(`${user}:${chosen.realm}:${password}`);
    const ha2 = await sha256(`${method}:${uri}`);
    const qop = chosen.qop ? "auth" : "";
    const response = qop
      ? await sha256(`${ha1}:${chosen.nonce}:${nc}:${cnonce}:${qop}:${ha2}`)
      : await sha256(`${ha1}:${chosen.nonce}:${ha2}`);
    let h = `Digest username="${user}", realm="${chosen.realm}", nonce="${chosen.nonce}", uri="${uri}", response="${response}", algorithm=SHA-256`;
    if (qop) h += `, qop=auth, nc=${nc}, cnonce="${cnonce}"`;
    if (chosen.opaque) h += `, opaque="${chosen.opaque}"`;
    return h;
  }

  // waitGathered resolves once every local ICE candidate is in the local
  // description: offers and answers are sent whole (no trickle ICE).
  function waitGathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(resolve => {
      const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); resolve(); } };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 5000); // use what has been gathered
    });
  }

  // UA registers one extension and handles one call at a time. Events go to
  // the on* callbacks; errors carry a plain-language message.
  class UA {
    constructor({ url, domain, user, password }) {
      this.url = url;
      this.domain = domain;
      this.user = user;
      this.password = password;
      this.host = rand(6) + ".invalid";
      this.contactUser = rand(4);
      this.regCallId = rand(12);
      this.regCSeq = 0;
      this.transport = url.startsWith("wss:") ? "WSS" : "WS";
      this.pending = new Map(); // branch → {resolve, onProvisional}
      this.call = null;
      this.stopped = false;
      this.retry = 0;
      this.registered = false;
      this.onstate = () => {};   // (state, detail): connecting, registered, failed, reconnecting, stopped
      this.oncall = () => {};    // (call) state changes of the current call
      this.onincoming = () => {}; // (call) a call rings
    }

    start() { this.stopped = false; this.connect(); }

    stop() {
      this.stopped = true;
      clearTimeout(this.refreshTimer);
      clearTimeout(this.retryTimer);
      if (this.call) this.hangup();
      if (this.ws && this.ws.readyState === WebSocket.OPEN && this.registered) {
        this.register(0).catch(() => {}).finally(() => this.ws && this.ws.close());
      } else if (this.ws) {
        this.ws.close();
      }
      this.registered = false;
      this.onstate("stopped");
    }

    connect() {
      this.onstate(this.retry ? "reconnecting" : "connecting");
      let ws;
      try {
        ws = new WebSocket(this.url, "sip");
      } catch (e) {
        this.onstate("failed", "Cannot open a connection to the server: " + e.message);
        return;
      }
      this.ws = ws;
      ws.onopen = () => {
        // RFC 5626 §4.4.1 CRLF keep-alives hold the connection open through
        // proxies and NATs that drop idle ones; the server answers each.
        clearInterval(this.keepalive);
        this.keepalive = setInterval(() => {
          if (ws.readyState === WebSocket.OPEN) ws.send("\r\n\r\n");
        }, 25000);
        this.register(600).then(ok => {
          if (ok) this.retry = 0;
        });
      };
      ws.onmessage = ev => this.receive(typeof ev.data === "string" ? ev.data : "");
      ws.onclose = () => {
        if (this.ws !== ws) return;
        clearInterval(this.keepalive);
        this.registered = false;
        clearTimeout(this.refreshTimer);
        for (const p of this.pending.values()) p.reject(new Error("connection lost"));
        this.pending.clear();
        if (this.call) this.endCall("Connection lost", false);
        if (this.stopped) return;
        // Reconnect with backoff: 1, 2, 4, 8 then 10 s.
        const delay = Math.min(1000 * 2 ** this.retry, 10000);
        this.retry++;
        this.onstate("reconnecting", "Connection to the server lost. Reconnecting…");
        this.retryTimer = setTimeout(() => this.connect(), delay);
      };
    }

    send(text) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) throw new Error("not connected");
      this.ws.send(text);
    }

    // request sends a request and resolves with its final response.
    request(lines, body, onProvisional, branch = "z9hG4bK" + rand(8)) {
      const via = `Via: SIP/2.0/${this.transport} ${this.host};branch=${branch}`;
      const text = [lines[0], via, "Max-Forwards: 70", ...lines.slice(1), "User-Agent: Switchboard-Web",
        `Content-Length: ${enc.encode(body || "").length}`, "", body || ""].join("\r\n");
      return new Promise((resolve, reject) => {
        this.pending.set(branch, { resolve, reject, onProvisional });
        try { this.send(text); } catch (e) { this.pending.delete(branch); reject(e); }
        setTimeout(() => {
          if (this.pending.delete(branch)) reject(new Error("no answer from the server"));
        }, 32000);
      }).then(res => Object.assign(res, { branch }));
    }

    contact() { return `<sip:${this.contactUser}@${this.host};transport=ws>`; }

    async register(expires) {
      const uri = `sip:${this.domain}`;
      const aor = `<sip:${this.user}@${this.domain}>`;
      const tag = rand(4);
      let auth = "";
      for (let attempt = 0; attempt < 2; attempt++) {
        this.regCSeq++;
        const lines = [`REGISTER ${uri} SIP/2.0`, `From: ${aor};tag=${tag}`, `To: ${aor}`, `Call-ID: ${this.regCallId}`,
          `CSeq: ${this.regCSeq} REGISTER`, `Contact: ${this.contact()};expires=${expires}`, `Expires: ${expires}`];
        if (auth) lines.push("Authorization: " + auth);
        let res;
        try {
          res = await this.request(lines, "");
        } catch (e) {
          if (expires) this.onstate("failed", "The server did not answer. Check your connection.");
          return false;
        }
        if (res.status === 401 && !auth) {
          auth = await authorization(res.all("www-authenticate"), this.user, this.password, "REGISTER", uri);
          if (!auth) { this.onstate("failed", "The server asks for a login method this page cannot do."); return false; }
          continue;
        }
        if (res.status >= 200 && res.status < 300) {
          if (!expires) return true;
          this.registered = true;
          let granted = expires;
          for (const c of res.all("contact")) {
            if (c.includes(this.host)) granted = parseInt(param(c, "expires"), 10) || granted;
          }
          clearTimeout(this.refreshTimer);
          this.refreshTimer = setTimeout(() => this.register(expires), Math.max(granted * 800, 5000));
          this.onstate("registered");
          return true;
        }
        this.registered = false;
        if (res.status === 401 || res.status === 403) {
          this.stopped = true;
          this.onstate("failed", "Wrong extension or password.");
          this.ws.close();
        } else {
          this.onstate("failed", `Sign-in failed: the server answered ${res.status} ${res.reason}.`);
        }
        return false;
      }
      return false;
    }

    receive(text) {
      if (!text || /^\s*$/.test(text)) return;
      const msg = parse(text);
      if (msg.status) {
        const branch = param(msg.get("via"), "branch");
        const p = this.pending.get(branch);
        if (!p) {
          // A retransmitted 2xx to our INVITE: ACK it again.
          if (this.call && msg.cseqMethod === "INVITE" && msg.status < 300 && this.call.acked) this.sendAck(this.call, msg);
          return;
        }
        if (msg.status < 200) { if (p.onProvisional) p.onProvisional(msg); return; }
        this.pending.delete(branch);
        p.resolve(msg);
        return;
      }
      this.handleRequest(msg).catch(e => console.error("request handling failed", e));
    }

    // respond answers a request; extra header lines and a body are optional.
    respond(req, status, reason, extra = [], body = "", toTag = "") {
      let to = req.get("to");
      if (toTag && !/;\s*tag=/i.test(to)) to += ";tag=" + toTag;
      const lines = [`SIP/2.0 ${status} ${reason}`, ...req.all("via").map(v => "Via: " + v), `From: ${req.get("from")}`, `To: ${to}`,
        `Call-ID: ${req.callId}`, `CSeq: ${req.get("cseq")}`, ...extra, "User-Agent: Switchboard-Web",
        `Content-Length: ${enc.encode(body).length}`, "", body];
      try { this.send(lines.join("\r\n")); } catch (e) { /* the connection is gone */ }
    }

    async handleRequest(req) {
      const c = this.call;
      const inCall = c && req.callId === c.callId;
      switch (req.method) {
        case "INVITE":
          if (inCall) { this.respond(req, 488, "Not Acceptable Here"); return; }
          if (c) { this.respond(req, 486, "Busy Here"); return; }
          return this.incoming(req);
        case "ACK":
          if (inCall && c.incoming) c.acked = true;
          return;
        case "CANCEL":
          if (inCall && c.incoming && c.state === "ringing") {
            this.respond(req, 200, "OK");
            this.respond(c.invite, 487, "Request Terminated", [], "", c.localTag);
            this.endCall("Missed call", false);
          } else {
            this.respond(req, 481, "Call/Transaction Does Not Exist");
          }
          return;
        case "BYE":
          if (!inCall) { this.respond(req, 481, "Call/Transaction Does Not Exist"); return; }
          this.respond(req, 200, "OK");
          this.endCall("Call ended by the other side", false);
          return;
        case "OPTIONS":
          this.respond(req, 200, "OK", ["Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO", "Accept: application/sdp"]);
          return;
        case "INFO":
          this.respond(req, inCall ? 200 : 481, inCall ? "OK" : "Call/Transaction Does Not Exist");
          return;
        default:
          this.respond(req, 405, "Method Not Allowed", ["Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"]);
      }
    }

    newCall(fields) {
      const call = Object.assign({ state: "new", muted: false, localCSeq: 1, pc: null, stream: null, startedAt: 0 }, fields);
      this.call = call;
      return call;
    }

    async media(call) {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        throw new Error("This page needs HTTPS (or localhost) to use the microphone.");
      }
      try {
        call.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      } catch (e) {
        throw new Error(e && e.name === "NotAllowedError"
          ? "Microphone access was denied. Allow the microphone for this page and try again."
          : "No microphone could be opened: " + (e && e.message ? e.message : e));
      }
      const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
      call.pc = pc;
      for (const t of call.stream.getAudioTracks()) pc.addTrack(t, call.stream);
      pc.ontrack = ev => { call.remoteStream = ev.streams[0] || new MediaStream([ev.track]); this.oncall(call); };
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === "failed" && this.call === call) {
          this.hangup("The call's audio connection failed.", true);
        }
      };
      return pc;
    }

    // dial calls target (an extension or number) on our domain.
    async dial(target) {
      if (this.call) throw new Error("Already in a call.");
      if (!this.registered) throw new Error("Not signed in.");
      const uri = `sip:${target}@${this.domain}`;
      const call = this.newCall({ incoming: false, peer: { user: target, name: "" }, callId: rand(12), localTag: rand(4), remoteUri: uri, target: uri });
      call.state = "calling";
      this.oncall(call);
      try {
        const pc = await this.media(call);
        await pc.setLocalDescription(await pc.createOffer());
        await waitGathered(pc);
      } catch (e) {
        this.endCall(e.message, true, call);
        return;
      }
      if (this.call !== call || call.state === "ended") return;
      const sdp = call.pc.localDescription.sdp;
      let auth = "";
      for (let attempt = 0; attempt < 2; attempt++) {
        const lines = [`INVITE ${uri} SIP/2.0`, `From: "${this.user}" <sip:${this.user}@${this.domain}>;tag=${call.localTag}`, `To: <${uri}>`,
          `Call-ID: ${call.callId}`, `CSeq: ${call.localCSeq} INVITE`, `Contact: ${this.contact()}`,
          "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO", "Content-Type: application/sdp"];
        if (auth) lines.push("Proxy-Authorization: " + auth);
        call.inviteLines = lines;
        let res;
        call.inviteBranch = "z9hG4bK" + rand(8);
        call.gotProvisional = false;
        const sent = this.request(lines, sdp, prov => {
          call.gotProvisional = true;
          if ((prov.status === 180 || prov.status === 183) && call.state === "calling") { call.state = "ringing"; this.oncall(call); }
          // Early media (ringback, announcements): the 183's SDP is the
          // answer, and the 2xx repeats it.
          if (prov.status === 183 && prov.body && !call.early) {
            call.early = true;
            call.pc.setRemoteDescription({ type: "answer", sdp: prov.body }).catch(() => { call.early = false; });
          }
          if (call.cancelWanted) this.sendCancel(call);
        }, call.inviteBranch);
        try {
          res = await sent;
        } catch (e) {
          this.endCall(e.message === "connection lost" ? "Connection lost." : "The server did not answer the call.", true, call);
          return;
        }
        if (res.status >= 300) this.sendAckFailure(call, res);
        if ((res.status === 407 || res.status === 401) && !auth) {
          auth = await authorization(res.all(res.status === 407 ? "proxy-authenticate" : "www-authenticate"), this.user, this.password, "INVITE", uri);
          call.localCSeq++;
          if (!auth || call.cancelWanted) { this.endCall(call.cancelWanted ? "Call cancelled" : "Cannot sign the call.", !call.cancelWanted, call); return; }
          continue;
        }
        if (res.status >= 200 && res.status < 300) return this.answered(call, res);
        this.endCall(failure(res.status, res.reason, call.peer.user), res.status !== 487, call);
        return;
      }
    }

    async answered(call, res) {
      call.remoteTag = param(res.get("to"), "tag");
      call.toHeader = res.get("to");
      const ct = res.get("contact");
      if (ct) call.target = uriOf(ct);
      this.sendAck(call, res);
      call.acked = true;
      if (call.cancelWanted || this.call !== call) { this.sendBye(call); return; }
      try {
        if (!call.early) await call.pc.setRemoteDescription({ type: "answer", sdp: res.body });
      } catch (e) {
        this.sendBye(call);
        this.endCall("The call could not be connected (audio formats do not match).", true, call);
        return;
      }
      this.connected(call);
    }

    connected(call) {
      call.state = "active";
      call.startedAt = Date.now();
      this.oncall(call);
    }

    sendAck(call, res) {
      const lines = [`ACK ${call.target} SIP/2.0`, `Via: SIP/2.0/${this.transport} ${this.host};branch=z9hG4bK${rand(8)}`, "Max-Forwards: 70",
        `From: "${this.user}" <sip:${this.user}@${this.domain}>;tag=${call.localTag}`, `To: ${res.get("to")}`,
        `Call-ID: ${call.callId}`, `CSeq: ${res.cseq} ACK`, "Content-Length: 0", "", ""];
      try { this.send(lines.join("\r\n")); } catch (e) { /* gone */ }
    }

    // sendAckFailure acknowledges a failure response within its INVITE
    // transaction (RFC 3261 §17.1.1.3).
    sendAckFailure(call, res) {
      const lines = [`ACK ${call.remoteUri} SIP/2.0`, `Via: SIP/2.0/${this.transport} ${this.host};branch=${res.branch}`, "Max-Forwards: 70",
        `From: "${this.user}" <sip:${this.user}@${this.domain}>;tag=${call.localTag}`, `To: ${res.get("to")}`,
        `Call-ID: ${call.callId}`, `CSeq: ${res.cseq} ACK`, "Content-Length: 0", "", ""];
      try { this.send(lines.join("\r\n")); } catch (e) { /* gone */ }
    }

    sendCancel(call) {
      // RFC 3261 §9.1: no CANCEL before a provisional response.
      if (!call.gotProvisional || call.cancelSent) return;
      call.cancelSent = true;
      const lines = [`CANCEL ${call.remoteUri} SIP/2.0`, `Via: SIP/2.0/${this.transport} ${this.host};branch=${call.inviteBranch}`, "Max-Forwards: 70",
        `From: "${this.user}" <sip:${this.user}@${this.domain}>;tag=${call.localTag}`, `To: <${call.remoteUri}>`,
        `Call-ID: ${call.callId}`, `CSeq: ${call.localCSeq} CANCEL`, "Content-Length: 0", "", ""];
      try { this.send(lines.join("\r\n")); } catch (e) { /* gone */ }
    }

    sendBye(call) {
      call.localCSeq++;
      let from, to;
      if (call.incoming) {
        from = call.invite.get("to") + (/;\s*tag=/i.test(call.invite.get("to")) ? "" : ";tag=" + call.localTag);
        to = call.invite.get("from");
      } else {
        from = `"${this.user}" <sip:${this.user}@${this.domain}>;tag=${call.localTag}`;
        to = call.toHeader;
      }
      this.request([`BYE ${call.target} SIP/2.0`, `From: ${from}`, `To: ${to}`, `Call-ID: ${call.callId}`, `CSeq: ${call.localCSeq} BYE`], "")
        .catch(() => {});
    }

    incoming(req) {
      const call = this.newCall({ incoming: true, invite: req, callId: req.callId, localTag: rand(4), peer: callerOf(req.get("from")),
        target: uriOf(req.get("contact")) || uriOf(req.get("from")), localCSeq: 1000 + Math.floor(Math.random() * 1000) });
      call.state = "ringing";
      this.respond(req, 180, "Ringing", [`Contact: ${this.contact()}`], "", call.localTag);
      this.onincoming(call);
      this.oncall(call);
    }

    async answer() {
      const call = this.call;
      if (!call || !call.incoming || call.state !== "ringing") return;
      call.state = "connecting";
      this.oncall(call);
      try {
        const pc = await this.media(call);
        await pc.setRemoteDescription({ type: "offer", sdp: call.invite.body });
        await pc.setLocalDescription(await pc.createAnswer());
        await waitGathered(pc);
      } catch (e) {
        this.respond(call.invite, e.name === "OperationError" || e.name === "InvalidAccessError" ? 488 : 480,
          e.name === "OperationError" ? "Not Acceptable Here" : "Temporarily Unavailable", [], "", call.localTag);
        this.endCall(e.message, true, call);
        return;
      }
      if (this.call !== call || call.state === "ended") return;
      this.respond(call.invite, 200, "OK", [`Contact: ${this.contact()}`, "Content-Type: application/sdp"], call.pc.localDescription.sdp, call.localTag);
      this.connected(call);
    }

    decline() {
      const call = this.call;
      if (!call || !call.incoming || call.state !== "ringing") return;
      this.respond(call.invite, 603, "Decline", [], "", call.localTag);
      this.endCall("Call declined", false);
    }

    hangup(reason = "Call ended", isError = false) {
      const call = this.call;
      if (!call) return;
      if (call.incoming && call.state === "ringing") return this.decline();
      if (call.incoming && call.state === "connecting") {
        this.respond(call.invite, 487, "Request Terminated", [], "", call.localTag);
      } else if (!call.incoming && !call.acked) {
        call.cancelWanted = true;
        this.sendCancel(call);
      } else {
        this.sendBye(call);
      }
      this.endCall(reason, isError);
    }

    mute(on) {
      const call = this.call;
      if (!call || !call.stream) return;
      call.muted = on;
      for (const t of call.stream.getAudioTracks()) t.enabled = !on;
      this.oncall(call);
    }

    // dtmf sends RFC 4733 telephone events on the call's audio stream.
    dtmf(tones) {
      const call = this.call;
      if (!call || call.state !== "active" || !call.pc) return false;
      const sender = call.pc.getSenders().find(s => s.track && s.track.kind === "audio");
      if (!sender || !sender.dtmf || !sender.dtmf.canInsertDTMF) return false;
      sender.dtmf.insertDTMF(tones, 120, 70);
      return true;
    }

    endCall(reason, isError, call = this.call) {
      if (!call || call !== this.call) return;
      call.state = "ended";
      call.endReason = reason;
      call.error = !!isError;
      if (call.pc) { try { call.pc.close(); } catch (e) { /* closed */ } }
      if (call.stream) for (const t of call.stream.getTracks()) t.stop();
      this.call = null;
      this.lastCall = call;
      this.oncall(call);
    }
  }

  // failure words a call's failure status for a person.
  function failure(status, reason, who) {
    switch (status) {
      case 404: return `${who} does not exist.`;
      case 480: return `${who} is offline or not answering.`;
      case 408: return `${who} did not answer.`;
      case 486: case 600: return `${who} is busy.`;
      case 603: return `${who} declined the call.`;
      case 487: return "Call cancelled";
      case 488: return "The call could not be connected (audio formats do not match).";
      case 403: return "You may not make this call.";
      case 503: return "The server is busy. Try again shortly.";
    }
    return `The call failed: ${status} ${reason}.`;
  }

  return { UA, parse, authorization, failure };
})();
