// Draws every chart of the page: each <script type="application/json" class="vl-spec">
// holds a Vega-Lite spec, rendered as SVG into the .vl-target before it (vega-embed).
(function () {
  "use strict";
  var specs = document.querySelectorAll("script.vl-spec");
  var pending = [];
  specs.forEach(function (el) {
    var target = el.parentNode.querySelector(".vl-target");
    var spec = JSON.parse(el.textContent);
    pending.push(vegaEmbed(target, spec, { renderer: "svg", actions: false })
      .then(function () { target.setAttribute("data-rendered", "true"); })
      .catch(function (err) {
        target.textContent = "chart could not be drawn: " + err.message;
        target.setAttribute("data-rendered", "error");
        console.error(err);
      }));
  });
  Promise.allSettled(pending).then(function () {
    document.body.setAttribute("data-charts", "done");
  });
})();
