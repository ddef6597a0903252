// The page: five views (models, cross-modal generation, latent space, samples, jobs) over the
// public HTTP API. No framework: each view is a few functions reading its form and calling
// api.js. This file holds the key field, navigation, the models, generation and samples
// views; latent.js and jobs.js the other two; outputs are drawn by render.js, image inputs
// come from pad.js.

import { getJson, hasKey, send, setKey } from "./api.js";
import { $, busy, el, num, onSubmit, optionalInt, options, say } from "./dom.js";
import { initJobs, refreshJobs } from "./jobs.js";
import { initLatent, resetLatent } from "./latent.js";
import { DrawingPad } from "./pad.js";
import { showOutputs } from "./render.js";

const state = { models: [], model: null, rows: [] };
const kindsOf = (model) => Object.fromEntries(model.modalities.map((m) => [m.name, m.kind]));
const modelPath = (op) => `v1/models/${encodeURIComponent(state.model.name)}/${op}`;

// ---- navigation: #models, #generate, ... show one section ---------------------------------
const VIEWS = ["models", "generate", "latent", "samples", "jobs"];

function showView() {
  const wanted = location.hash.slice(1);
  const view = VIEWS.includes(wanted) ? wanted : "models";
  for (const name of VIEWS) $(`view-${name}`).hidden = name !== view;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "jobs") busy($("jobs-refresh"), refreshJobs);
}

// ---- API key (page memory only) ------------------------------------------------------------
function keyStatus() {
  $("key-state").textContent = hasKey() ? "key set (this page only)" : "no key";
}

// ---- models --------------------------------------------------------------------------------
function describeSource(source) {
  if (source.kind === "hub") return `Hub ${source.repo_id} @ ${source.sha || source.revision || "?"}`;
  if (source.kind === "store") return `store ${source.name}@${source.version || "latest"}`;
  return source.kind;
}

function modelRow(m) {
  const unload = el("button", { type: "button", textContent: "Unload", testid: "model-unload" });
  unload.addEventListener("click", () =>
    busy(unload, async () => {
      await send(`v1/models/${encodeURIComponent(m.name)}`, undefined, "DELETE");
      await refreshModels();
      say(`unloaded ${m.name}`);
    }));
  const modalities = m.modalities.map((x) => `${x.name} (${x.kind} ${x.shape.join("×")})`);
  const spaces = Object.entries(m.latent_spaces).map(([n, s]) => `${n}: ${s.dim}`);
  return el("tr", { testid: `model-row-${m.name}` },
    el("td", { testid: "model-name" }, m.name),
    el("td", {}, m.model_type),
    el("td", {}, modalities.join(", ")),
    el("td", {}, spaces.join(", ")),
    el("td", { testid: "model-parameters" }, m.parameters.toLocaleString("en-US")),
    el("td", {}, m.samplers.join(", ") || "none"),
    el("td", { testid: "model-source" }, describeSource(m.source)),
    el("td", {}, m.ready ? "yes" : "warming up"),
    el("td", {}, unload));
}

/** Reload the models table and picker; keep the chosen model (or choose `select`). */
async function refreshModels(select) {
  state.models = (await getJson("v1/models")).models;
  $("models-body").replaceChildren(...state.models.map(modelRow));
  const names = state.models.map((m) => m.name);
  const current = select || $("model-select").value;
  options($("model-select"), names);
  if (names.length) $("model-select").value = names.includes(current) ? current : names[0];
  chooseModel();
}

/** The picker changed: rebuild the views that depend on the model (only if it changed). */
function chooseModel() {
  const model = state.models.find((m) => m.name === $("model-select").value) || null;
  const same = model?.name === state.model?.name && model?.loaded_at === state.model?.loaded_at;
  state.model = model;
  if (same) return;
  buildGenerate();
  resetLatent(model);
  options($("sample-sampler"), model ? model.samplers : []);
  for (const id of ["gen-results", "sample-results"]) $(id).replaceChildren();
}

async function loadModel(source, name) {
  const info = await send("v1/models", name ? { source, name } : { source });
  await refreshModels(info.name);
  say(`loaded ${info.name} (${describeSource(info.source)})`);
}

// ---- cross-modal generation ----------------------------------------------------------------
/** An editor for one modality of one input sample: `.element` and `.value()` (its JSON). */
function editor(modality, label) {
  if (modality.kind === "image") return new DrawingPad(modality.shape, label);
  const input = el("input", { type: "text" });
  input.setAttribute("aria-label", label);
  if (modality.accepts.includes("text")) {
    input.dataset.testid = "text-input";
    return { element: input, value: () => input.value };
  }
  if (modality.kind === "categorical") {
    const select = el("select", { testid: "class-select" });
    select.setAttribute("aria-label", label);
    options(select, [...Array(modality.shape.at(-1)).keys()].map(String));
    return { element: select, value: () => parseInt(select.value, 10) };
  }
  const size = modality.shape.reduce((a, b) => a * b, 1);
  input.placeholder = `${size} numbers, comma-separated`;
  input.dataset.testid = "vector-input";
  const value = () => {
    const values = input.value.split(/[\s,]+/).filter(Boolean).map(Number);
    if (values.length !== size || values.some((v) => !Number.isFinite(v))) {
      throw new Error(`${label}: give ${size} numbers`);
    }
    return values;
  };
  return { element: input, value };
}

/** One input sample: per modality an "observed" box and an editor. */
function addRow() {
  const model = state.model;
  const index = state.rows.length;
  const row = { observed: {}, editors: {} };
  const box = el("fieldset", { className: "gen-row", testid: `gen-row-${index}` },
    el("legend", {}, `sample ${index + 1}`));
  model.modalities.forEach((m, i) => {
    const label = `sample ${index + 1} ${m.name}`;
    const check = el("input", { type: "checkbox", id: `obs-${index}-${m.name}`, testid: `observed-${m.name}` });
    check.checked = model.requires.includes(m.name) || i === 0;
    check.setAttribute("aria-label", `${label}: observed`);
    row.observed[m.name] = check;
    row.editors[m.name] = editor(m, label);
    box.append(el("div", { className: "modality", testid: `input-${m.name}` },
      el("h4", {}, m.name),
      el("label", { htmlFor: check.id }, check, " observed"),
      row.editors[m.name].element));
  });
  state.rows.push(row);
  $("gen-rows").append(box);
}

/** One input sample and the target boxes (default: what the first sample does not give). */
function buildGenerate() {
  state.rows = [];
  $("gen-rows").replaceChildren();
  const targets = $("gen-targets");
  targets.replaceChildren(el("legend", {}, "targets"));
  const model = state.model;
  if (!model) return;
  addRow();
  const given = Object.entries(state.rows[0].observed).filter(([, c]) => c.checked).map(([n]) => n);
  const defaults = model.generates.filter((n) => !given.includes(n));
  for (const name of model.generates) {
    const check = el("input", { type: "checkbox", value: name, id: `target-${name}`, testid: `target-${name}` });
    check.checked = defaults.length ? defaults.includes(name) : true;
    targets.append(el("label", { htmlFor: check.id }, check, ` ${name}`));
  }
}

async function generate() {
  const inputs = {};
  for (const m of state.model.modalities) {
    if (!state.rows.some((r) => r.observed[m.name].checked)) continue;
    inputs[m.name] = state.rows.map((r) => (r.observed[m.name].checked ? r.editors[m.name].value() : null));
  }
  if (!Object.keys(inputs).length) throw new Error("mark at least one modality observed");
  const targets = [...$("gen-targets").querySelectorAll("input:checked")].map((c) => c.value);
  if (!targets.length) throw new Error("choose at least one target");
  const body = {
    inputs, targets, n_samples: num("gen-n"), seed: optionalInt("gen-seed"),
    mean_latent: $("gen-mean").checked, encoding: "png",
  };
  const answer = await send(modelPath("generate"), body);
  showOutputs($("gen-results"), answer.outputs, kindsOf(state.model), 2);
  say(`generated ${targets.join(", ")} for ${state.rows.length} sample(s)`);
}

// ---- unconditional samples -----------------------------------------------------------------
async function sample() {
  const model = state.model;
  if (!model.samplers.length) throw new Error(`${model.name} has no sampler (no unconditional samples)`);
  const body = {
    n: num("sample-n"), sampler: $("sample-sampler").value, seed: optionalInt("sample-seed"),
    encoding: "png",
  };
  const answer = await send(modelPath("sample"), body);
  showOutputs($("sample-results"), answer.outputs, kindsOf(model), 1);
  say(`${body.n} samples from ${answer.sampler}`);
}

// ---- wiring --------------------------------------------------------------------------------
function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setKey($("api-key").value);
    $("api-key").value = ""; // the key lives in api.js's memory, not in the field
    keyStatus();
    say(hasKey() ? "API key set for this page" : "no API key");
  });
  $("key-forget").addEventListener("click", () => {
    setKey("");
    keyStatus();
    say("API key forgotten");
  });
  $("model-select").addEventListener("change", chooseModel);
  window.addEventListener("hashchange", showView);

  onSubmit("load-form", () => {
    const kind = $("load-kind").value;
    const id = $("load-id").value.trim();
    const version = $("load-version").value.trim();
    const source = kind === "hub"
      ? { kind, repo_id: id, ...(version ? { revision: version } : {}) }
      : { kind, name: id, version: version || "latest" };
    return loadModel(source, $("load-name").value.trim());
  });
  $("gen-add").addEventListener("click", () => state.model && addRow());
  $("gen-remove").addEventListener("click", () => {
    if (state.rows.length > 1) {
      state.rows.pop();
      $("gen-rows").lastElementChild.remove();
    }
  });
  onSubmit("gen-form", generate);
  onSubmit("sample-form", sample);
  initLatent();
  initJobs((source) => loadModel(source));

  keyStatus();
  showView();
  refreshModels().then(
    () => document.body.setAttribute("data-ready", "true"),
    (err) => say(`could not list the models: ${err.message}`, true),
  );
}

start();
