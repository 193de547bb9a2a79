// dagrad explorer, the page: reads the data html.py embedded, lays out the cards and hands each
// one to its module (graph.js, replay.js, backprop.js, history.js).
(function (V) {
  "use strict";

  function card(parent, title, cls) {
    const c = document.createElement("section");
    c.className = "dg-card" + (cls ? " " + cls : "");
    if (title) c.insertAdjacentHTML("beforeend", `<h2>${V.esc(title)}</h2>`);
    parent.appendChild(c);
    return c;
  }

  function details(box, data, id) {
    const n = data.nodes[id], esc = V.esc;
    const ins = data.edges.filter((e) => e.dst === id).map((e) => data.nodes[e.src].name);
    const outs = data.edges.filter((e) => e.src === id).map((e) => data.nodes[e.dst].name);
    const row = (k, v) => (v ? `<dt>${k}</dt><dd>${esc(v)}</dd>` : "");
    box.innerHTML = "<dl>" + row("node", n.name) + row("op", n.op) + row("kind", n.kind + (n.pass === "backward" ? " (backward pass)" : "")) +
      row("shape", "(" + (n.shape || []).join(", ") + ")") + row("dtype", n.dtype) +
      row("schedule", n.step !== undefined ? "#" + n.step : "") + row("buffer", n.buffer) + row("value", n.value && n.value.text) + row("grad", n.grad ? n.grad.text : n.grad_note) +
      row("inputs", ins.join(", ")) + row("used by", outs.join(", ")) + row("id", String(n.id)) + "</dl>";
  }

  V.boot = function (data) {
    const root = document.getElementById("dagrad-explorer");
    root.innerHTML = "";
    const head = document.createElement("header");
    head.className = "dg-head";
    const nNodes = Object.keys(data.nodes).length;
    head.innerHTML = `<h1>${V.esc(data.title)}</h1><span class="dg-sub">${nNodes} nodes · ${data.edges.length} edges` +
      (data.groups ? ` · ${data.groups} groups of repeated structure` : "") + "</span>" +
      '<span class="dg-legend"><span class="variable">variable</span><span class="parameter">parameter</span>' +
      '<span class="op">operation</span><span class="output">output</span>' +
      (data.has_backward ? '<span class="backward">backward</span>' : "") +
      (data.groups ? '<span class="group">group</span>' : "") + "</span>";
    root.appendChild(head);
    if (data.note) root.insertAdjacentHTML("beforeend", `<p class="dg-note" id="note">${V.esc(data.note)}</p>`);
    const out = { data: data };
    if (nNodes) {
      const main = document.createElement("div");
      main.className = "dg-main";
      root.appendChild(main);
      const gc = card(main, "graph", "dg-graph-card");
      const host = document.createElement("div");
      host.className = "dg-graph";
      gc.appendChild(host);
      const side = document.createElement("div");
      side.className = "dg-side";
      main.appendChild(side);
      let bpCard = null;
      if (data.backprop && data.backprop.steps.length) bpCard = card(side, "backprop, node by node", "dg-bp");
      const dc = card(side, "node");
      const box = document.createElement("div");
      box.className = "dg-details";
      box.id = "node-details";
      box.textContent = "Hover a node for its value and gradient; click it to keep it here.";
      dc.appendChild(box);
      out.graph = new V.Graph(host, data, {
        onSelect: (id) => {
          details(box, data, id);
          for (const e of host.querySelectorAll(".dg-selected")) e.classList.remove("dg-selected");
          const e = host.querySelector(`[data-node-id="${CSS.escape(id)}"]`);
          if (e) e.classList.add("dg-selected");
        },
      });
      host.insertAdjacentHTML("beforeend", '<div class="dg-zoom"><button id="zoom-in" title="zoom in">+</button>' +
        '<button id="zoom-out" title="zoom out">−</button><button id="zoom-fit" title="fit the graph">fit</button></div>' +
        '<div class="dg-hint">drag to pan · wheel to zoom · hover a node' + (data.groups ? " · click a group to open it" : "") + "</div>");
      host.querySelector("#zoom-in").addEventListener("click", () => out.graph.zoomBy(1.25));
      host.querySelector("#zoom-out").addEventListener("click", () => out.graph.zoomBy(0.8));
      host.querySelector("#zoom-fit").addEventListener("click", () => out.graph.fit());
      if (bpCard) out.backprop = new V.Backprop(bpCard, data, out.graph);
      if (data.profile && data.profile.events.length) {
        const rc = card(root, "replay of the profiled run · one track per thread", "dg-wide");
        out.replay = new V.Replay(rc, data, out.graph);
      }
    }
    if (data.history && data.history.steps.length) {
      const hc = card(root, "training", "dg-wide");
      out.history = new V.History(hc, data);
    }
    V.app = out;
    document.body.setAttribute("data-ready", "true");
    return out;
  };

  document.addEventListener("DOMContentLoaded", () => {
    V.boot(JSON.parse(document.getElementById("dagrad-data").textContent));
  });
})(window.dagradViz = window.dagradViz || {});
