// The run page's charts (uPlot, shipped in static/vendor): loss raw and smoothed with the evaluation loss on the
// held-out clips (points every train.eval_every steps), learning rate, gradient norm.
// Metrics come from /api/runs/<i>/<name>/metrics?offset=N: only the lines after byte N, so a live page reads
// each line once. A step logged again after a resume replaces the earlier value. Smoothing is TensorBoard's:
// an exponential moving average with bias correction, the raw line kept faint underneath.
(function () {
  "use strict";
  const root = document.getElementById("charts");
  if (!root || typeof uPlot === "undefined") return;
  const api = root.dataset.api;
  const names = ["loss", "video_loss", "audio_loss", "lr", "grad_norm", "eval_loss", "eval_loss_ema"];
  const values = Object.fromEntries(names.map((name) => [name, new Map()]));
  const slider = document.getElementById("smoothing");
  const shown = root.querySelector("output");
  let offset = 0;
  let charts = null;
  const STEP_INCREMENTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000];

  function smooth(series, weight) {
    let last = 0, count = 0;
    return series.map((value) => {
      if (value === null || value === undefined) return null;
      last = last * weight + (1 - weight) * value;
      count += 1;
      return last / (1 - Math.pow(weight, count));
    });
  }

  function columns() {
    const steps = Array.from(new Set(names.flatMap((name) => Array.from(values[name].keys())))).sort((a, b) => a - b);
    const column = (name) => steps.map((step) => (values[name].has(step) ? values[name].get(step) : null));
    return {
      steps, loss: column("loss"), video: column("video_loss"), audio: column("audio_loss"), lr: column("lr"),
      grad: column("grad_norm"), evaluation: column("eval_loss"), evaluationEma: column("eval_loss_ema"),
    };
  }

  function lossData(data, weight) {
    return [data.steps, data.loss, smooth(data.loss, weight), data.video, data.audio, data.evaluation, data.evaluationEma];
  }

  function options(element, series, extra) {
    return Object.assign({
      title: element.dataset.title,
      width: Math.max(element.clientWidth, 300),
      height: element.id === "chart-loss" ? 260 : 200,
      cursor: { sync: { key: "ltx2-run" } },
      scales: { x: { time: false } },
      axes: [{ label: "step", incrs: STEP_INCREMENTS }, { size: 60 }],
      series: [{ label: "step" }].concat(series),
    }, extra || {});
  }

  function build(data) {
    const weight = Number(slider.value);
    const loss = document.getElementById("chart-loss");
    const lr = document.getElementById("chart-lr");
    const grad = document.getElementById("chart-grad");
    charts = {
      loss: new uPlot(options(loss, [
        { label: "loss", stroke: "rgba(37, 99, 235, 0.3)", width: 1, spanGaps: true },
        { label: "smoothed", stroke: "#2563eb", width: 2, spanGaps: true },
        { label: "video", stroke: "#16a34a", width: 1, show: false, spanGaps: true },
        { label: "audio", stroke: "#d97706", width: 1, show: false, spanGaps: true },
        { label: "evaluation", stroke: "#dc2626", width: 2, spanGaps: true, points: { show: true, size: 6 } },
        { label: "evaluation (EMA)", stroke: "#9333ea", width: 1, show: false, spanGaps: true, points: { show: true, size: 5 } },
      ]), lossData(data, weight), loss),
      lr: new uPlot(options(lr, [{ label: "lr", stroke: "#7c3aed", width: 2, spanGaps: true }]), [data.steps, data.lr], lr),
      grad: new uPlot(options(grad, [{ label: "grad norm", stroke: "#db2777", width: 1, spanGaps: true }]), [data.steps, data.grad], grad),
    };
    window.ltx2Charts = charts;
  }

  function draw() {
    const data = columns();
    root.dataset.points = String(data.steps.length);
    if (!data.steps.length) return;
    if (!charts) { build(data); return; }
    const weight = Number(slider.value);
    charts.loss.setData(lossData(data, weight));
    charts.lr.setData([data.steps, data.lr]);
    charts.grad.setData([data.steps, data.grad]);
  }

  async function load() {
    const response = await fetch(api + "?offset=" + offset, { credentials: "same-origin" });
    if (!response.ok) return false;
    const body = await response.json();
    if (body.offset < offset) names.forEach((name) => values[name].clear()); // metrics.jsonl was replaced
    offset = body.offset;
    body.steps.forEach((step, i) => {
      for (const name of names) if (body[name][i] !== null) values[name].set(step, body[name][i]);
    });
    return body.steps.length > 0;
  }

  async function poll() {
    if (!document.hidden) {
      try {
        if (await load()) draw();
      } catch (error) {
        console.warn("metrics update failed", error);
      }
    }
    const running = document.querySelector(".state.running, .state.stopping, .state.queued") !== null;
    setTimeout(poll, running ? 2000 : 10000);
  }

  slider.addEventListener("input", function () {
    shown.value = Number(slider.value).toFixed(2);
    draw();
  });
  window.addEventListener("resize", function () {
    if (!charts) return;
    for (const [name, chart] of Object.entries(charts)) {
      const element = document.getElementById(name === "grad" ? "chart-grad" : "chart-" + name);
      chart.setSize({ width: Math.max(element.clientWidth, 300), height: chart.height });
    }
  });
  load().then(draw).then(() => {
    root.dataset.drawnAt = String(Math.round(performance.now()));  // for the page benchmark and the tests
    root.dataset.ready = "1";
    setTimeout(poll, 2000);
  });
})();

// Two steps side by side: play (and pause) each prompt's pair together.
(function () {
  "use strict";
  function wire() {
    const button = document.querySelector("#gallery .play-both");
    if (!button || button.dataset.wired) return;
    button.dataset.wired = "1";
    button.hidden = false;
    button.addEventListener("click", function () {
      const videos = Array.from(document.querySelectorAll("#gallery .side-by-side video"));
      const playing = videos.some((video) => !video.paused);
      videos.forEach((video) => {
        if (playing) { video.pause(); return; }
        video.currentTime = 0;
        video.play().catch(() => {});
      });
    });
  }
  // The table of every sampled step holds links; opening it turns them into players.
  function players(event) {
    const details = event.target;
    if (!details.matches || !details.matches("details.all-samples") || !details.open) return;
    for (const link of details.querySelectorAll("a.sample-link")) {
      const video = document.createElement("video");
      video.controls = true;
      video.preload = "metadata";
      video.src = link.href;
      link.replaceWith(video);
    }
  }
  wire();
  document.addEventListener("ltx2:updated", wire);
  document.addEventListener("toggle", players, true);
})();
