// dagrad playground, demo 3: training. The server fits y = w x + b with dagrad and streams every
// step; this draws the loss (log scale), the line over the data and w, b against their targets,
// names the state the server reports, and sends each move of the learning-rate slider to the
// running optimizer.
(function (P) {
  "use strict";
  const V = window.dagradViz;

  class Training {
    constructor(app) {
      this.app = app;
      this.form = document.getElementById("train-form");
      this.msg = document.getElementById("train-msg");
      this.slider = document.getElementById("train-lr");
      this.lrOut = document.getElementById("train-lr-value");
      this.serverLr = document.getElementById("train-server-lr");
      this.state = document.getElementById("train-state");
      this.why = document.getElementById("train-why");
      this.numbers = document.getElementById("train-numbers");
      this.history = [];
      this.data = null;
      this.running = false;
      this.slider.addEventListener("input", () => { this._showLr(); this._sendLr(); });
      document.getElementById("train-play").addEventListener("click", () => this.play());
      document.getElementById("train-pause").addEventListener("click", () => this.pause());
      document.getElementById("train-step").addEventListener("click", () => this.step());
      document.getElementById("train-reset").addEventListener("click", () => this.reset());
      document.getElementById("train-speed").addEventListener("change", (ev) =>
        this._ask("train.speed", { steps_per_tick: ev.target.value }));
      document.getElementById("compare-form").addEventListener("submit", (ev) => { ev.preventDefault(); this.compare(); });
      this.form.elements.task.addEventListener("change", () => { this._taskFields(); this.reset(); });
      this._taskFields();
      this._showLr();
      this.draw();
    }

    setup(hello) {
      const c = hello.caps;
      this.states = hello.states;
      document.getElementById("compare-caps").textContent =
        `at most ${c.compare_rates} rates and ${c.compare_steps} steps; lr ${c.lr_min}–${c.lr_max}; samples ≤ ${c.samples}; ` +
        `a run pauses after ${c.train_steps} steps`;
    }

    _taskFields() {
      const task = this.form.elements.task.value;
      for (const el of this.form.querySelectorAll("[data-task]")) el.hidden = el.getAttribute("data-task") !== task;
    }

    lr() { return +Math.pow(10, +this.slider.value).toPrecision(2); }
    _showLr() { this.lrOut.textContent = String(this.lr()); }

    params() {
      const p = P.formValues(this.form);
      p.lr = this.lr();
      return p;
    }

    async _ask(type, params) {
      try {
        const r = await this.app.client.request(type, params);
        P.say(this.msg, null);
        return r;
      } catch (e) {
        P.say(this.msg, e.message);
        return null;
      }
    }

    _sendLr() {  // the latest position only: a drag sends at most one request in flight
      if (!this.data) return;
      this.lrWanted = this.lr();
      if (this.lrBusy) return;
      this.lrBusy = true;
      const send = async () => {
        const lr = this.lrWanted;
        const r = await this._ask("train.lr", { lr: lr });
        if (r) { this.serverLr.textContent = String(r.lr); this._summary(r.summary); }
        if (this.lrWanted !== lr) return send();
        this.lrBusy = false;
      };
      send();
    }

    _start(r) {
      this.data = r.data;
      this.history = [];
      this.serverLr.textContent = String(r.summary.lr);
      this._summary(r.summary);
      this.draw();
    }

    async play() {
      const r = await this._ask("train.play", this.params());
      if (!r) return;
      if (r.summary.steps === 0 || !this.data) this._start(r);
      this.running = true;
      this._summary(r.summary);
    }
    async pause() {
      await this._ask("train.pause", {});
      this.running = false;
      this._summary(this.summary);
    }
    async step() {
      if (!this.data) { const r = await this._ask("train.reset", this.params()); if (!r) return; this._start(r); }
      const r = await this._ask("train.step", { steps: 1 });
      if (r) this.update(r);
    }
    async reset() {
      await this._ask("train.pause", {});
      this.running = false;
      const r = await this._ask("train.reset", this.params());
      if (r) this._start(r);
    }

    /** A message of the training stream. */
    stream(msg) {
      if (msg.type === "train.update") this.update(msg.data);
      else if (msg.type === "train.stopped") {
        this.running = false;
        if (msg.ok === false) P.say(this.msg, msg.error);
        else { P.say(this.msg, msg.data.stopped, "info"); this._summary(msg.data); }
      }
    }

    update(d) {
      for (const s of d.steps) this.history.push(s);
      this._summary(d.summary);
      this.draw();
    }

    _summary(s) {
      if (!s) return;
      this.summary = s;
      this.state.textContent = s.state;
      this.state.setAttribute("data-state", s.state);
      this.why.textContent = s.why + (s.stopped ? ". " + s.stopped : "");
      const f = (v) => (v === null ? "overflow" : P.fmt(v));
      const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%");
      const last = this.history[this.history.length - 1];
      const model = this.data && this.data.task === "digits" ? `train accuracy ${pct(s.train_acc)} · test accuracy ${pct(s.test_acc)}`
        : `w ${f(s.w)} · b ${f(s.b)}`;
      this.numbers.textContent = `step ${s.steps} · loss ${last ? f(last.loss) : "–"} · ${model} · lr ${s.lr}` +
        (this.running ? " · playing" : "");
    }

    draw() {
      const h = this.history;
      const best = this.data && this.data.best ? this.data.best.loss : null;
      P.lineChart(document.getElementById("train-loss"), {
        series: [{ name: "loss", points: h.map((s) => [s.step, s.loss]), colour: "#5e35b1" }],
        hlines: best ? [{ y: Math.max(best, 1e-12), colour: "#9e9e9e", label: "best fit " + P.fmt(best) }] : [],
        logY: true, yLabel: "loss (log)",
      });
      const digits = !!this.data && this.data.task === "digits";
      document.getElementById("train-params-card").hidden = digits;
      document.getElementById("compare-card").hidden = digits;
      document.getElementById("train-fit-title").textContent = digits ? "accuracy: train and test" : "the fitted line over the data";
      if (digits) {
        P.lineChart(document.getElementById("train-fit"), {
          series: [{ name: "train", points: h.map((s) => [s.step, s.train_acc]), colour: "#00897b" },
                   { name: "test", points: h.map((s) => [s.step, s.test_acc]), colour: "#ef6c00" }],
          hlines: [{ y: 0, colour: "#fff" }, { y: 1, colour: "#9e9e9e", label: "train (teal), test (orange) · " + this.data.source }],
          yLabel: "accuracy", yLimit: [0, 1],
        });
        return;
      }
      if (this.data) {
        const last = h[h.length - 1], s = this.summary || {};
        P.fitChart(document.getElementById("train-fit"), this.data.xs, this.data.ys,
          s.w !== undefined ? s.w : last && last.w, s.b !== undefined ? s.b : last && last.b, this.data.target);
      } else P.lineChart(document.getElementById("train-fit"), { series: [], xLabel: "x", yLabel: "y" });
      P.lineChart(document.getElementById("train-params"), {
        series: [{ name: "w", points: h.map((s) => [s.step, s.w]), colour: "#00897b" },
                 { name: "b", points: h.map((s) => [s.step, s.b]), colour: "#ef6c00" }],
        hlines: [{ y: 3, colour: "#00897b", label: "w target 3" }, { y: 7, colour: "#ef6c00", label: "b target 7" }],
        yLabel: "value", yLimit: [-10, 20],
      });
    }

    async compare() {
      const form = document.getElementById("compare-form"), msg = document.getElementById("compare-msg");
      const p = Object.assign(P.formValues(form), { samples: this.form.elements.samples.value, noise: this.form.elements.noise.value });
      P.say(msg, "running on the server…", "info");
      try {
        const r = await this.app.client.request("train.compare", p);
        P.say(msg, null);
        P.lineChart(document.getElementById("compare-chart"), {
          series: r.runs.map((run, i) => ({ name: "lr " + run.lr, points: run.losses.map((l, k) => [k, l]), colour: P.SERIES[i % P.SERIES.length] })),
          hlines: [{ y: Math.max(r.best_loss, 1e-12), colour: "#9e9e9e", label: "best fit" }], logY: true, yLabel: "loss (log)",
        });
        document.getElementById("compare-legend").innerHTML = r.runs.map((run, i) =>
          `<div data-lr="${run.lr}"><i style="background:${P.SERIES[i % P.SERIES.length]}"></i><b>lr ${run.lr}</b> ` +
          `<span class="pg-state" data-state="${V.esc(run.state)}">${V.esc(run.state)}</span> ` +
          `<span class="k">after ${run.steps} steps${run.stopped ? " (stopped: overflow)" : ""}</span></div>`).join("");
      } catch (e) {
        P.say(msg, e.message);
      }
    }
  }
  P.Training = Training;
})(window.dagradPlayground = window.dagradPlayground || {});
