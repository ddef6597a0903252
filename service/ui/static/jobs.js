// The jobs view: a training job from a form (POST /v1/jobs), followed live from its server-sent
// events with progress and loss curves, cancelled, and its published model loaded.

import { getJson, getText, send, streamEvents } from "./api.js";
import { lineChart } from "./chart.js";
import { $, busy, el, num, onSubmit, say } from "./dom.js";

const TERMINAL = ["succeeded", "failed", "cancelled"];
const COLOURS = { "step loss": "#aaa", "train loss": "#1f77b4", "eval loss": "#d62728" };
let job = null; // the followed job: {id, abort, series, record}

/** The train spec the form describes. */
function spec() {
  const hidden = $("job-hidden").value.split(/[\s,]+/).filter(Boolean).map(Number);
  const model = { model_type: $("job-type").value.trim(), latent_dim: num("job-latent") };
  if (hidden.length) {
    model.encoder = { kind: "mlp", hidden };
    model.decoder = { kind: "mlp", hidden };
  }
  const extra = $("job-extra").value.trim();
  if (extra) {
    try {
      Object.assign(model, JSON.parse(extra));
    } catch (err) {
      throw new Error(`extra model config: not valid JSON (${err.message})`);
    }
  }
  const result = {
    type: "train", model, dataset: $("job-dataset").value.trim(),
    trainer: { epochs: num("job-epochs"), batch_size: num("job-batch"), learning_rate: num("job-lr") },
    missing_ratio: num("job-missing"),
  };
  if ($("job-name").value.trim()) result.name = $("job-name").value.trim();
  return result;
}

/** Loss points from a record's progress: the step loss while training, train/eval per epoch. */
function record(progress) {
  const m = progress.metrics || {};
  const add = (name, x, y) => {
    const points = job.series[name];
    if (x !== undefined && y !== undefined && (!points.length || points.at(-1)[0] !== x)) points.push([x, y]);
  };
  add("step loss", progress.step, m.step_loss);
  add("train loss", progress.step, m.train_loss);
  add("eval loss", progress.step, m.eval_loss);
}

function drawChart() {
  const series = Object.entries(job.series)
    .filter(([, points]) => points.length)
    .map(([name, points]) => ({ name, colour: COLOURS[name], points }));
  lineChart($("job-chart"), series, "step");
  // points per curve, for tests and assistive tech (a canvas says nothing by itself)
  const counts = series.map((s) => `${s.name}: ${s.points.length}`).join(", ");
  $("job-chart").dataset.points = counts;
  $("job-chart").setAttribute("aria-label", `loss curves (${counts || "no points yet"})`);
}

function show(rec) {
  job.record = rec;
  const p = rec.progress || {};
  const published = rec.result && rec.result.model;
  $("job-id").textContent = rec.id;
  $("job-state").textContent = rec.state;
  $("job-progress").value = p.fraction || (rec.state === "succeeded" ? 1 : 0);
  const parts = [];
  if (p.epochs) parts.push(`epoch ${p.completed_epochs ?? p.epoch}/${p.epochs}`);
  if (p.total) parts.push(`step ${p.step}/${p.total}`);
  if (p.eta_s && !TERMINAL.includes(rec.state)) parts.push(`ETA ${Math.round(p.eta_s)} s`);
  if (published) parts.push(`published ${published.name}@${published.version}`);
  $("job-detail").textContent = parts.length ? `(${parts.join(", ")})` : "";
  $("job-error").hidden = !rec.error;
  $("job-error").textContent = rec.error || "";
  $("job-cancel").disabled = TERMINAL.includes(rec.state);
  $("job-load").hidden = !(rec.state === "succeeded" && published);
  record(p);
  drawChart();
}

/** After a training job ends: its whole epoch history from the metrics.jsonl artifact. */
async function loadHistory(finished) {
  const name = "train/metrics.jsonl";
  if (!finished.artifacts.some((a) => a.name === name)) return;
  const text = await getText(`v1/jobs/${finished.id}/artifacts/${name}`);
  const rows = text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
  for (const key of ["train_loss", "eval_loss"]) {
    job.series[key.replace("_", " ")] = rows.filter((r) => r[key] !== undefined).map((r) => [r.step, r[key]]);
  }
  drawChart();
}

/** Follow a job's events (SSE over fetch, with the key) until it ends; reconnect if dropped. */
export async function watchJob(id) {
  if (job) job.abort.abort();
  const abort = new AbortController();
  job = { id, abort, series: { "step loss": [], "train loss": [], "eval loss": [] }, record: null };
  $("job-panel").hidden = false;
  const mine = () => job && job.abort === abort;
  try {
    while (mine()) {
      await streamEvents(`v1/jobs/${id}/events`, (_event, data) => mine() && show(data), abort.signal);
      if (!mine()) return;
      const latest = await getJson(`v1/jobs/${id}`);
      show(latest);
      if (TERMINAL.includes(latest.state)) {
        await loadHistory(latest);
        refreshJobs().catch(() => {});
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  } catch (err) {
    if (err.name !== "AbortError" && mine()) say(`job ${id}: ${err.message}`, true);
  }
}

/** The recent jobs table, each with a button to follow it. */
export async function refreshJobs() {
  const { jobs } = await getJson("v1/jobs?limit=20");
  $("jobs-body").replaceChildren(...jobs.map((j) => {
    const watch = el("button", { type: "button", textContent: "Watch", testid: "job-watch" });
    watch.addEventListener("click", () => watchJob(j.id));
    return el("tr", { testid: `job-row-${j.id}` },
      el("td", {}, el("code", {}, j.id.slice(0, 8))), el("td", {}, j.type),
      el("td", {}, j.state), el("td", {}, j.created), el("td", {}, watch));
  }));
}

/** Wire the view; `loadModel(source)` serves a published model. */
export function initJobs(loadModel) {
  onSubmit("job-form", async () => {
    const submitted = await send("v1/jobs", spec());
    say(`submitted job ${submitted.id}`);
    watchJob(submitted.id);
  });
  $("job-cancel").addEventListener("click", () =>
    busy($("job-cancel"), async () => show(await send(`v1/jobs/${job.id}/cancel`))));
  $("job-load").addEventListener("click", () =>
    busy($("job-load"), () => {
      const { name, version } = job.record.result.model;
      return loadModel({ kind: "store", name, version: String(version) });
    }));
  $("jobs-refresh").addEventListener("click", () => busy($("jobs-refresh"), refreshJobs));
}
