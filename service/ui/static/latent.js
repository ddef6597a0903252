// The latent-space view: a 2-D map of a dataset's posterior means (POST .../latent-map),
// coloured by label; a click decodes the nearest point (POST .../decode) and marks it A, the
// next click B; "interpolate" decodes the codes on the straight line from A to B.

import { send } from "./api.js";
import { colourOf, scatter } from "./chart.js";
import { $, busy, el, num, onSubmit, optionalInt, options } from "./dom.js";
import { showOutputs } from "./render.js";

let model = null; // the model the map belongs to
let map = null; // the last latent-map answer
let picks = []; // indices of the points A and B
let nearest = () => -1; // click → index of the closest point (from chart.scatter)

const kindsOf = (m) => Object.fromEntries(m.modalities.map((x) => [x.name, x.kind]));

/** A new model: its latent spaces in the form, the old map gone. */
export function resetLatent(chosen) {
  model = chosen;
  map = null;
  picks = [];
  options($("map-space"), model ? Object.keys(model.latent_spaces) : []);
  if (model) $("map-space").value = model.primary_space;
  const canvas = $("map-canvas");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  for (const id of ["map-decoded", "interp-results", "map-legend"]) $(id).replaceChildren();
  $("map-info").textContent = "";
  $("map-a").textContent = $("map-b").textContent = "–";
}

function dataset() {
  const choice = $("map-dataset").value;
  if (choice === "npz") {
    const id = $("map-upload").value.trim();
    if (!id) throw new Error("give the uploaded dataset's id");
    return { kind: "npz", id };
  }
  return { kind: "builtin", name: "digits", split: choice.split(":")[1] };
}

function draw() {
  const marks = {};
  picks.forEach((p, i) => (marks[p] = "AB"[i]));
  nearest = scatter($("map-canvas"), map.points, map.labels, marks);
  $("map-a").textContent = picks[0] === undefined ? "–" : `point ${picks[0]}`;
  $("map-b").textContent = picks[1] === undefined ? "–" : `point ${picks[1]}`;
}

async function compute() {
  const body = {
    dataset: dataset(), n: num("map-n"), method: $("map-method").value,
    space: $("map-space").value, seed: optionalInt("map-seed"),
  };
  map = await send(`v1/models/${encodeURIComponent(model.name)}/latent-map`, body);
  picks = [];
  draw();
  const labels = [...new Set(map.labels.filter((l) => l !== null))].sort((a, b) => a - b);
  $("map-legend").replaceChildren(...labels.map((l) => {
    const swatch = el("span", { className: "swatch" });
    swatch.style.background = colourOf(l); // CSSOM: allowed by the CSP
    return el("span", {}, swatch, String(l));
  }));
  const ev = map.explained_variance;
  $("map-info").textContent = `${map.n} points, ${map.method}, space ${map.space}` +
    (ev ? `, explained variance ${ev.map((v) => v.toFixed(2)).join(" / ")}` : "");
}

/** Posterior mean of map point `i` (a row of `means`, [n, D] row-major). */
function meanOf(i) {
  const d = map.means.shape[1];
  return map.means.data.slice(i * d, (i + 1) * d);
}

/** Decode latent rows of the map's space into `container`. */
async function decode(rows, container, captions) {
  const body = {
    latent: { shape: [rows.length, rows[0].length], data: rows.flat() },
    space: map.space, seed: optionalInt("map-seed"), encoding: "png",
  };
  const answer = await send(`v1/models/${encodeURIComponent(model.name)}/decode`, body);
  showOutputs(container, answer.outputs, kindsOf(model), 1, captions);
}

async function pick(event) {
  if (!map) return;
  const i = nearest(event);
  picks = picks.length === 1 ? [picks[0], i] : [i];
  draw();
  const label = map.labels[i];
  const row = map.rows ? `, row ${map.rows[i]}` : "";
  await decode([meanOf(i)], $("map-decoded"), [`point ${i}${row}` + (label === null ? "" : `, label ${label}`)]);
}

async function interpolate() {
  if (picks.length < 2) throw new Error("click two points first (A, then B)");
  const [a, b] = picks.map(meanOf);
  const steps = Math.max(2, num("interp-steps"));
  const rows = [...Array(steps).keys()].map((s) => a.map((v, j) => v + ((b[j] - v) * s) / (steps - 1)));
  await decode(rows, $("interp-results"), rows.map((_, s) => (s / (steps - 1)).toFixed(2)));
}

export function initLatent() {
  onSubmit("map-form", compute);
  $("map-canvas").addEventListener("click", (event) => busy($("map-submit"), () => pick(event)));
  $("interp-go").addEventListener("click", () => busy($("interp-go"), interpolate));
}
