// dagrad playground, demo 2: backprop. The server computes everything with dagrad (forward
// values, the gradient arriving at each node, what it passes to each input, and the final
// .grad from backward()); this steps through it: forward node by node, then backward node by
// node with the local rule written out with its numbers.
(function (P) {
  "use strict";
  const V = window.dagradViz;
  const esc = (s) => V.esc(s);
  const num = (v) => (v === null || v === undefined ? "?" : String(+v.toPrecision(4)));

  class Backprop {
    constructor(app) {
      this.app = app;
      this.form = document.getElementById("bp-form");
      this.msg = document.getElementById("bp-msg");
      this.host = document.getElementById("bp-graph");
      this.panel = document.getElementById("pg-bp-panel");
      this.count = document.getElementById("pg-bp-count");
      this.grads = document.getElementById("bp-grads");
      this.form.addEventListener("submit", (ev) => { ev.preventDefault(); this.compute(); });
      this.form.elements.example.addEventListener("change", () => { this._inputs(); this.compute(); });
      document.getElementById("pg-bp-reset").addEventListener("click", () => this.set(0));
      document.getElementById("pg-bp-prev").addEventListener("click", () => this.set(this.k - 1));
      document.getElementById("pg-bp-step").addEventListener("click", () => this.set(this.k + 1));
      document.getElementById("pg-bp-all").addEventListener("click", () => this.set(this.total));
    }

    setup(hello) {
      this.examples = hello.examples;
      this._inputs();
    }

    _inputs() {
      const ex = this.examples[this.form.elements.example.value];
      document.getElementById("bp-inputs").innerHTML = Object.entries(ex.inputs).map(([k, v]) =>
        `<label>${esc(k)} <input name="${esc(k)}" value="${v}" size="5"></label>`).join("");
    }

    async compute() {
      const all = P.formValues(this.form);
      const example = all.example;
      delete all.example;
      try {
        const r = await this.app.client.request("backprop", { example: example, inputs: all });
        P.say(this.msg, null);
        this.show(r);
      } catch (e) {
        P.say(this.msg, e.message);
      }
    }

    show(r) {
      this.r = r;
      const data = r.explorer;
      this.values = {};
      for (const id in data.nodes) this.values[id] = data.nodes[id].value;
      this.host.innerHTML = "";
      document.getElementById("bp-title").textContent = r.title;
      this.graph = new V.Graph(this.host, data, {});
      this.graph.svg.setAttribute("id", "bp-svg");
      this.total = r.forward.length + r.backward.length;
      this.consumers = {};
      r.backward.forEach((s, k) => { for (const p of s.passes) (this.consumers[p.to] = this.consumers[p.to] || []).push(k); });
      this.set(0);
      this._gradTable(false);
    }

    name(id) { return this.r.explorer.nodes[id].name; }

    /** The state after the first k steps: forward steps first, then backward ones. */
    set(k) {
      if (!this.r) return;
      this.k = Math.max(0, Math.min(this.total, k));
      const r = this.r, g = this.graph, nodes = r.explorer.nodes, F = r.forward.length;
      const f = Math.min(this.k, F), b = Math.max(0, this.k - F);
      // values: leaves always; an op once its forward step has run
      const computed = new Set(r.forward.slice(0, f).map((s) => s.node));
      let changed = false;
      for (const id in nodes) {
        const show = nodes[id].op === "leaf" || computed.has(id);
        const want = show ? this.values[id] : null;
        if (nodes[id].value !== want) { nodes[id].value = want; changed = true; }
      }
      if (changed) { g.render(); g.fit(); }
      g.state = {};
      for (const id in nodes) g.state[id] = nodes[id].op === "leaf" || computed.has(id) ? "done" : "waiting";
      g.bp = {}; g.gradText = {}; g.flows = [];
      if (f > 0 && b === 0) g.bp[r.forward[f - 1].node] = "current";
      for (let j = 0; j < b; j++) {
        const s = r.backward[j];
        g.bp[s.node] = j === b - 1 ? "current" : "done";
        g.gradText[s.node] = num(s.grad);
      }
      const cur = b > 0 ? r.backward[b - 1] : null;
      if (cur) for (const p of cur.passes) { g.flows.push({ src: p.to, dst: cur.node, text: num(p.grad) }); g.gradText[p.to] = g.gradText[p.to] || num(p.grad); }
      g.refresh();

      this.count.textContent = this.k <= F ? `forward ${f} / ${F}` : `backward ${b} / ${r.backward.length}`;
      let h;
      if (this.k === 0) h = `<p>Press <b>step</b>: first the forward pass computes each node's value, then backward sends gradients from ${esc(r.output.name)} back to the inputs.</p>`;
      else if (b === 0) {
        const s = r.forward[f - 1];
        h = `<p class="pg-phase">forward</p><p><b>${esc(s.text)}</b></p>`;
        if (f === F) h += `<p class="k">The forward pass is done: ${esc(r.output.name)} = ${num(r.output.value)}. Step on for backward.</p>`;
      } else {
        const n = nodes[cur.node];
        h = `<p class="pg-phase">backward</p><p><b>${esc(n.name)}</b> receives gradient <span class="g">${num(cur.grad)}</span>` +
          (cur.root ? " (the output's gradient with respect to itself)" : "") + ".</p>" +
          `<p class="pg-rule">${esc(cur.rule)}</p>`;
        if (cur.passes.length) h += "<ul class=\"pg-passes\">" + cur.passes.map((p) =>
          `<li>to <b>${esc(this.name(p.to))}</b>: ${esc(p.text)}</li>`).join("") + "</ul>";
      }
      this.panel.innerHTML = h;
      this.panel.setAttribute("data-step", String(this.k));
      this._gradTable(b === r.backward.length);
    }

    _gradTable(done) {
      const r = this.r;
      let h = "<table><thead><tr><th>input</th><th>value</th><th>chain rule (local derivatives, output to input)</th>" +
        "<th>dagrad backward: .grad</th></tr></thead><tbody>";
      for (const name in r.grads) {
        h += `<tr data-name="${esc(name)}"><td><b>${esc(name)}</b></td><td class="num">${num(r.inputs[name])}</td>` +
          `<td class="chain">${done ? esc(r.chains[name].text) : "…"}</td>` +
          `<td class="num dagrad g">${done ? num(r.grads[name]) : "…"}</td></tr>`;
      }
      h += "</tbody></table>";
      if (!done) h += '<p class="k">Step through backward (or press <b>all</b>) to fill this in.</p>';
      this.grads.innerHTML = h;
    }

    shown() { if (this.graph) this.graph.fit(); }
  }
  P.Backprop = Backprop;
})(window.dagradPlayground = window.dagradPlayground || {});
