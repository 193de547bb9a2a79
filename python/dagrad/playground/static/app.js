// dagrad playground, the page: connects to the server, hands each demo its part of the page,
// and shows one demo at a time (the URL's #execution, #backprop or #training picks it).
(function (P) {
  "use strict";

  function boot() {
    const conn = document.getElementById("pg-conn");
    const app = { hello: null };
    P.app = app;
    app.client = new P.Client(
      (msg) => { if (msg.type && msg.type.startsWith("train.")) app.training.stream(msg); },
      (state, text) => {
        conn.setAttribute("data-state", state);
        conn.textContent = { connecting: "connecting…", connected: "connected", closed: "disconnected: is the server running?" }[state] || text || state;
      });
    app.execution = new P.Execution(app);
    app.backprop = new P.Backprop(app);
    app.training = new P.Training(app);

    const demos = ["execution", "backprop", "training"];
    const show = () => {
      const want = location.hash.slice(1);
      const name = demos.includes(want) ? want : "execution";
      for (const d of demos) document.getElementById("demo-" + d).hidden = d !== name;
      for (const a of document.querySelectorAll(".pg-tabs a")) a.setAttribute("aria-selected", String(a.getAttribute("data-demo") === name));
      if (app[name].shown) app[name].shown();
    };
    window.addEventListener("hashchange", show);
    show();

    app.client.request("hello", {}).then((hello) => {
      app.hello = hello;
      app.execution.setup(hello);
      app.backprop.setup(hello);
      app.training.setup(hello);
      show();
      return app.backprop.compute();
    }).then(() => {
      show();
      document.body.setAttribute("data-ready", "true");
    }).catch((e) => { P.say(document.getElementById("exec-msg"), e.message); });
  }

  document.addEventListener("DOMContentLoaded", boot);
})(window.dagradPlayground = window.dagradPlayground || {});
