// Two small <canvas> plots: line charts (loss curves) and a scatter plot (the latent map).

// Ten distinguishable colours (the "tab10" palette), one per class label; grey for none.
export const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
];
export const colourOf = (label) => (label === null || label === undefined ? "#999" : PALETTE[label % 10]);

const MARGIN = { left: 56, right: 12, top: 12, bottom: 28 };

/** [min, max] of numbers, widened when they are all equal. */
function extent(values) {
  let [lo, hi] = [Math.min(...values), Math.max(...values)];
  if (!Number.isFinite(lo)) return [0, 1];
  if (lo === hi) [lo, hi] = [lo - 1, hi + 1];
  return [lo, hi];
}

/** A linear map of the data box onto the canvas' plot area. */
function frame(canvas, xs, ys) {
  const [x0, x1] = extent(xs);
  const [y0, y1] = extent(ys);
  const w = canvas.width - MARGIN.left - MARGIN.right;
  const h = canvas.height - MARGIN.top - MARGIN.bottom;
  return {
    x: (x) => MARGIN.left + ((x - x0) / (x1 - x0)) * w,
    y: (y) => MARGIN.top + h - ((y - y0) / (y1 - y0)) * h,
    x0, x1, y0, y1,
  };
}

function axes(ctx, canvas, f, xLabel) {
  ctx.strokeStyle = "#888";
  ctx.fillStyle = "#333";
  ctx.font = "11px sans-serif";
  ctx.strokeRect(MARGIN.left, MARGIN.top, canvas.width - MARGIN.left - MARGIN.right,
    canvas.height - MARGIN.top - MARGIN.bottom);
  ctx.textAlign = "right";
  ctx.fillText(f.y1.toPrecision(4), MARGIN.left - 4, MARGIN.top + 10);
  ctx.fillText(f.y0.toPrecision(4), MARGIN.left - 4, canvas.height - MARGIN.bottom);
  const bottom = canvas.height - 8;
  ctx.textAlign = "left";
  ctx.fillText(String(+f.x0.toPrecision(4)), MARGIN.left, bottom);
  ctx.textAlign = "right";
  ctx.fillText(String(+f.x1.toPrecision(4)), canvas.width - MARGIN.right, bottom);
  ctx.textAlign = "center";
  if (xLabel) ctx.fillText(xLabel, canvas.width / 2, bottom);
}

/** Line chart of `series`: [{name, colour, points: [[x, y], ...]}], legend top right. */
export function lineChart(canvas, series, xLabel = "step") {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const all = series.flatMap((s) => s.points);
  if (!all.length) return;
  const f = frame(canvas, all.map((p) => p[0]), all.map((p) => p[1]));
  axes(ctx, canvas, f, xLabel);
  series.forEach((s, k) => {
    ctx.strokeStyle = ctx.fillStyle = s.colour;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    s.points.forEach(([x, y], i) => (i ? ctx.lineTo(f.x(x), f.y(y)) : ctx.moveTo(f.x(x), f.y(y))));
    ctx.stroke();
    for (const [x, y] of s.points) ctx.fillRect(f.x(x) - 2, f.y(y) - 2, 4, 4);
    ctx.textAlign = "right";
    ctx.fillText(s.name, canvas.width - MARGIN.right - 6, MARGIN.top + 14 + 14 * k);
  });
}

/**
 * Scatter plot of `points` ([[x, y], ...]) coloured by `labels`; `marks` maps a point index
 * to a letter drawn beside it (the chosen A and B). Returns `nearest(event)`: the index of the
 * point closest to a mouse event on the canvas.
 */
export function scatter(canvas, points, labels, marks = {}) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const f = frame(canvas, points.map((p) => p[0]), points.map((p) => p[1]));
  axes(ctx, canvas, f, "");
  points.forEach(([x, y], i) => {
    ctx.fillStyle = colourOf(labels[i]);
    ctx.beginPath();
    ctx.arc(f.x(x), f.y(y), 3, 0, 2 * Math.PI);
    ctx.fill();
  });
  ctx.font = "bold 14px sans-serif";
  for (const [i, letter] of Object.entries(marks)) {
    const [x, y] = points[i];
    ctx.strokeStyle = ctx.fillStyle = "#000";
    ctx.beginPath();
    ctx.arc(f.x(x), f.y(y), 6, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.fillText(letter, f.x(x) + 8, f.y(y) - 8);
  }
  return (event) => {
    const box = canvas.getBoundingClientRect();
    const px = ((event.clientX - box.left) * canvas.width) / box.width;
    const py = ((event.clientY - box.top) * canvas.height) / box.height;
    let [best, bestD] = [-1, Infinity];
    points.forEach(([x, y], i) => {
      const d = (f.x(x) - px) ** 2 + (f.y(y) - py) ** 2;
      if (d < bestD) [best, bestD] = [i, d];
    });
    return best;
  };
}
