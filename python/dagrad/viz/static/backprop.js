// dagrad explorer, backprop stepping: visits the nodes from the output back to the inputs, one
// per step. The current node shows the gradient that has arrived at it, and the edges to its
// inputs carry what it passes to each; every value was computed by dagrad (html.py).
(function (V) {
  "use strict";

  // The local rule, in words, for the ops a first graph uses.
  const HINT = {
    add: "an add passes its gradient unchanged to both inputs",
    sub: "a subtraction passes the gradient to the first input and its negative to the second",
    mul: "a multiply sends each input the gradient times the other input",
    div: "a / b sends g / b to a and −g·a / b² to b",
    matmul: "A @ B sends g @ Bᵀ to A and Aᵀ @ g to B",
    tanh: "tanh sends g · (1 − tanh²)",
    relu: "relu passes the gradient where its input was positive, 0 elsewhere",
    sum: "a sum copies its gradient to every element",
    mean: "a mean spreads its gradient evenly over the elements",
  };

  class Backprop {
    constructor(root, data, graph) {
      this.data = data;
      this.graph = graph;
      this.steps = data.backprop.steps;
      this.consumers = {};  // node id -> the steps that pass it a gradient
      this.steps.forEach((s, k) => { for (const p of s.passes) (this.consumers[p.to] = this.consumers[p.to] || []).push(k); });
      this.stepOf = {};
      this.steps.forEach((s, k) => { this.stepOf[s.node] = k; });
      root.insertAdjacentHTML("beforeend",
        '<div class="dg-controls">' +
        '<button id="bp-reset" title="back to the start">⟲</button>' +
        '<button id="bp-prev" title="previous node">◀</button>' +
        '<button id="bp-step" class="dg-primary" title="next node">step ▶</button>' +
        '<button id="bp-all" title="every node">all</button>' +
        '<span id="bp-count"></span></div><div id="bp-panel"></div>');
      this.panel = root.querySelector("#bp-panel");
      this.count = root.querySelector("#bp-count");
      root.querySelector("#bp-reset").addEventListener("click", () => this.set(0));
      root.querySelector("#bp-prev").addEventListener("click", () => this.set(this.k - 1));
      root.querySelector("#bp-step").addEventListener("click", () => this.set(this.k + 1));
      root.querySelector("#bp-all").addEventListener("click", () => this.set(this.steps.length));
      this.buttons = root.querySelectorAll("button");
      this.set(0);
    }

    name(id) {
      const n = this.data.nodes[id];
      return n ? n.name : String(id);
    }

    /** One sentence on what a step does, with the numbers in it. */
    describe(s) {
      const esc = V.esc, n = this.data.nodes[s.node];
      const g = (x) => `<span class="g">${esc(x ? x.short : "?")}</span>`;
      let h;
      if (n.kind === "variable" || n.kind === "parameter")
        return `<b>${esc(n.name)}</b> is a ${n.kind}: the gradient ${g(s.grad)} that arrived is what backward adds to its <code>.grad</code>.`;
      if (s.root) h = `<b>${esc(n.name)}</b> is the output: backprop starts here with gradient ${g(s.grad)}.`;
      else h = `<b>${esc(n.name)}</b> receives gradient ${g(s.grad)}.`;
      if (s.passes.length) {
        h += " It passes " + s.passes.map((p) => `${g(p.grad)} to <b>${esc(this.name(p.to))}</b>`).join(" and ") + ".";
        if (HINT[n.op]) h += ` <span class="k">(${HINT[n.op]})</span>`;
      }
      return h;
    }

    /** Shows backprop after its first k steps. */
    set(k) {
      this.k = Math.max(0, Math.min(this.steps.length, k));
      const g = this.graph, esc = V.esc;
      g.bp = {};
      g.gradText = {};
      g.flows = [];
      const stepped = new Set();
      for (let j = 0; j < this.k; j++) {
        const s = this.steps[j];
        stepped.add(s.node);
        g.bp[s.node] = j === this.k - 1 ? "current" : "done";
        if (s.grad) g.gradText[s.node] = s.grad.short;
      }
      // an input shows its gradient once every node that passes it one has stepped
      for (const id in this.consumers) {
        if (this.consumers[id].every((j) => j < this.k) && this.data.nodes[id] && this.data.nodes[id].grad)
          g.gradText[id] = this.data.nodes[id].grad.short;
      }
      const cur = this.k ? this.steps[this.k - 1] : null;
      if (cur) for (const p of cur.passes) g.flows.push({ src: p.to, dst: cur.node, text: p.grad ? p.grad.short : "?" });
      g.refresh();

      this.count.textContent = `${this.k} / ${this.steps.length}`;
      let h = '<div class="dg-step">';
      if (!cur) {
        h += "Gradients flow from the output back to the inputs. Press <b>step</b> to visit the nodes one by one.";
      } else {
        h += this.describe(cur);
      }
      h += "</div><table><thead><tr><th>node</th><th>value</th><th>grad</th></tr></thead><tbody>";
      const SHOWN = 40;  // the latest steps; a 2,000-node graph has as many
      if (this.k > SHOWN) h += `<tr><td colspan="3" class="k">… ${this.k - SHOWN} earlier steps</td></tr>`;
      for (let j = Math.max(0, this.k - SHOWN); j < this.k; j++) {
        const s = this.steps[j];
        const n = this.data.nodes[s.node];
        h += `<tr data-node-id="${esc(s.node)}"${j === this.k - 1 ? ' class="dg-current"' : ""}>` +
          `<td>${esc(n.name)}</td><td class="num value">${n.value ? esc(n.value.short) : ""}</td>` +
          `<td class="num grad g">${s.grad ? esc(s.grad.short) : "–"}</td></tr>`;
      }
      h += "</tbody></table>";
      this.panel.innerHTML = h;
      this.panel.setAttribute("data-step", String(this.k));
    }
  }
  V.Backprop = Backprop;
})(window.dagradViz = window.dagradViz || {});
