// dagrad playground, the connection: one WebSocket per tab (the server keeps one session per
// socket). request() sends {id, type, params} and resolves with the reply's data, or rejects
// with the server's message; messages without an id (the training stream) go to onStream.
(function (P) {
  "use strict";

  class Client {
    constructor(onStream, onStatus) {
      this.onStream = onStream;
      this.onStatus = onStatus;
      this.pending = {};
      this.next = 1;
      this.ready = null;
      this.connect();
    }

    connect() {
      const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
      this.onStatus("connecting");
      const ws = new WebSocket(url);
      this.ws = ws;
      this.ready = new Promise((resolve) => { this._open = resolve; });
      ws.addEventListener("open", () => { this.onStatus("connected"); this._open(); });
      ws.addEventListener("message", (ev) => this._message(ev.data));
      ws.addEventListener("close", () => {
        for (const id in this.pending) this.pending[id].reject(new Error("the connection to the server closed"));
        this.pending = {};
        this.onStatus("closed");
        setTimeout(() => this.connect(), 1500);  // a restarted server is found again
      });
    }

    _message(text) {
      let msg;
      try { msg = JSON.parse(text); } catch (e) { return; }
      if (msg.id !== undefined && msg.id !== null && this.pending[msg.id]) {
        const p = this.pending[msg.id];
        delete this.pending[msg.id];
        if (msg.ok) p.resolve(msg.data); else p.reject(new Error(msg.error || "the request failed"));
      } else if (msg.type === "error") {
        this.onStatus("refused", msg.error);
      } else {
        this.onStream(msg);
      }
    }

    async request(type, params) {
      await this.ready;
      const id = this.next++;
      return new Promise((resolve, reject) => {
        this.pending[id] = { resolve: resolve, reject: reject };
        this.ws.send(JSON.stringify({ id: id, type: type, params: params || {} }));
      });
    }
  }
  P.Client = Client;

  /** The values of a form's named fields, as the strings typed (the server checks them). */
  P.formValues = function (form) {
    const out = {};
    for (const el of form.elements) if (el.name) out[el.name] = el.value;
    return out;
  };

  /** Shows a message (an error, or null to clear it) in a demo's message line. */
  P.say = function (el, text, kind) {
    el.textContent = text || "";
    el.setAttribute("data-kind", text ? kind || "error" : "");
  };
})(window.dagradPlayground = window.dagradPlayground || {});
