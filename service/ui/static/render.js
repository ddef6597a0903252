// Turning API outputs into DOM: image tiles (base64 PNG), bars for class probabilities, numbers
// for vectors. Outputs are TensorOut objects: `shape` [...leading, ...modality shape], `png`
// nested over the leading dimensions, `data` flat row-major, `classes` for categorical ones.

import { el } from "./dom.js";

const product = (xs) => xs.reduce((a, b) => a * b, 1);

/** An <img> of a base64 PNG, drawn with sharp pixels. */
export function imageTile(base64, alt) {
  return el("img", { className: "pixel", src: "data:image/png;base64," + base64, alt, testid: "out-image" });
}

/** Vertical bars, one per class, and the most probable class under them. */
export function probabilityBars(probs, predicted) {
  const best = predicted ?? probs.indexOf(Math.max(...probs));
  const bars = el("div", { className: "bars" });
  probs.forEach((p, i) => {
    const bar = el("span", { className: i === best ? "bar best" : "bar", title: `${i}: ${p.toFixed(3)}` });
    bar.style.height = `${Math.max(1, Math.round(p * 40))}px`; // CSSOM: allowed by the CSP
    bars.append(el("span", { className: "bar-col" }, bar, el("small", {}, String(i))));
  });
  return el("div", { className: "probs" }, bars, el("b", { testid: "out-class" }, String(best)));
}

/** A short list of numbers. */
function numbers(values) {
  const text = values.slice(0, 16).map((v) => Number(v).toFixed(3)).join(", ");
  return el("code", { testid: "out-vector" }, values.length > 16 ? text + ", …" : text);
}

/** One item (index `i` over the leading dimensions) of an output as a DOM node. */
function item(out, kind, lead, i, label) {
  if (out.png) return imageTile(out.png.flat(lead - 1)[i], label);
  const size = product(out.shape.slice(lead));
  const values = (out.data || []).slice(i * size, (i + 1) * size);
  if (out.text) return el("code", { testid: "out-text" }, String(out.text.flat(lead - 1)[i]));
  if (kind === "categorical") {
    const classes = out.classes ? out.classes.flat(lead - 1)[i] : undefined;
    return probabilityBars(values, classes);
  }
  return numbers(values);
}

/**
 * Show `outputs` (modality → TensorOut) in `container`, one block per modality. With two
 * leading dimensions ([S, B]: generate) each input sample is a row and each draw a column;
 * with one ([n]: sample, decode) the items form one row, captioned by `captions[i]` if given.
 */
export function showOutputs(container, outputs, kinds, lead, captions = []) {
  container.replaceChildren();
  for (const [name, out] of Object.entries(outputs)) {
    const block = el("div", { className: "output", testid: `output-${name}` }, el("h4", {}, name));
    const [draws, rows] = lead === 2 ? [out.shape[0], out.shape[1]] : [out.shape[0], 1];
    for (let b = 0; b < rows; b++) {
      const row = el("div", { className: "tiles" });
      if (lead === 2) row.append(el("span", { className: "row-label" }, `sample ${b + 1}`));
      for (let s = 0; s < draws; s++) {
        const i = lead === 2 ? s * rows + b : s;
        const node = item(out, kinds[name], lead, i, `${name} ${i + 1}`);
        row.append(el("figure", {}, node, captions[s] ? el("figcaption", {}, captions[s]) : null));
      }
      block.append(row);
    }
    container.append(block);
  }
}
