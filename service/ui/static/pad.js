// A drawing pad for one image modality: draw with the pointer or upload a picture, then export
// a PNG of the modality's size (C×H×W) for the API. Drawings are cropped to their ink and
// scaled to fill the image, as the digits in the training data are; uploads are only resized.

const PAD_PIXELS = 160; // on-screen size of the longer side

/** The element factory and exporter for one image input. `shape` is [C, H, W]. */
export class DrawingPad {
  constructor(shape, label) {
    [this.channels, this.height, this.width] = shape;
    this.k = Math.max(1, Math.round(PAD_PIXELS / Math.max(this.height, this.width)));
    this.mode = "empty"; // empty | drawn | uploaded
    this.element = document.createElement("div");
    this.element.className = "pad";

    this.canvas = document.createElement("canvas");
    this.canvas.width = this.width * this.k;
    this.canvas.height = this.height * this.k;
    this.canvas.setAttribute("aria-label", `${label}: draw here`);
    this.canvas.dataset.testid = "pad-canvas";
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    this.clear();
    this.listen();

    const clear = document.createElement("button");
    clear.type = "button";
    clear.textContent = "Clear";
    clear.dataset.testid = "pad-clear";
    clear.addEventListener("click", () => this.clear());

    const upload = document.createElement("input");
    upload.type = "file";
    upload.accept = "image/*";
    upload.dataset.testid = "pad-upload";
    upload.setAttribute("aria-label", `${label}: upload a picture`);
    upload.addEventListener("change", () => upload.files[0] && this.load(upload.files[0]));

    this.preview = document.createElement("img"); // what the API will receive
    this.preview.className = "pixel preview";
    this.preview.alt = "the image sent";
    this.preview.dataset.testid = "pad-preview";

    const tools = document.createElement("div");
    tools.className = "pad-tools";
    tools.append(clear, upload, this.preview);
    this.element.append(this.canvas, tools);
  }

  /** Black canvas, nothing drawn. */
  clear() {
    this.ctx.fillStyle = "#000";
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.mode = "empty";
    if (this.preview) this.preview.removeAttribute("src");
  }

  /** Pointer strokes in white, about 1.5 output pixels wide. */
  listen() {
    let last = null;
    const at = (event) => {
      const box = this.canvas.getBoundingClientRect();
      return [
        ((event.clientX - box.left) * this.canvas.width) / box.width,
        ((event.clientY - box.top) * this.canvas.height) / box.height,
      ];
    };
    const line = (from, to) => {
      const c = this.ctx;
      c.strokeStyle = "#fff";
      c.lineWidth = 1.5 * this.k;
      c.lineCap = c.lineJoin = "round";
      c.beginPath();
      c.moveTo(...from);
      c.lineTo(...to);
      c.stroke();
    };
    this.canvas.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      if (this.mode === "empty") this.mode = "drawn";
      last = at(event);
      line(last, last);
    });
    this.canvas.addEventListener("pointermove", (event) => {
      if (!last) return;
      const here = at(event);
      line(last, here);
      last = here;
    });
    const stop = () => {
      if (last) this.showPreview();
      last = null;
    };
    this.canvas.addEventListener("pointerup", stop);
    this.canvas.addEventListener("pointerleave", stop);
  }

  /** Show an uploaded picture, stretched to the pad (pixels kept sharp). */
  async load(file) {
    const bitmap = await createImageBitmap(file);
    this.clear();
    this.ctx.imageSmoothingEnabled = false;
    this.ctx.drawImage(bitmap, 0, 0, this.canvas.width, this.canvas.height);
    this.mode = "uploaded";
    this.showPreview();
  }

  showPreview() {
    this.preview.src = this.toDataUrl();
  }

  /** The drawing cropped to its ink and centred, scaled so its longer side fills the image. */
  normalised() {
    const { width, height } = this.canvas;
    const pixels = this.ctx.getImageData(0, 0, width, height).data;
    let [x0, y0, x1, y1] = [width, height, -1, -1];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (pixels[(y * width + x) * 4] > 32) {
          x0 = Math.min(x0, x);
          y0 = Math.min(y0, y);
          x1 = Math.max(x1, x);
          y1 = Math.max(y1, y);
        }
      }
    }
    const out = document.createElement("canvas");
    out.width = width;
    out.height = height;
    const c = out.getContext("2d");
    c.fillStyle = "#000";
    c.fillRect(0, 0, width, height);
    if (x1 < 0) return out;
    const [bw, bh] = [x1 - x0 + 1, y1 - y0 + 1];
    const scale = Math.min(width / bw, height / bh);
    const [dw, dh] = [bw * scale, bh * scale];
    c.drawImage(this.canvas, x0, y0, bw, bh, (width - dw) / 2, (height - dh) / 2, dw, dh);
    return out;
  }

  /** A `data:image/png;base64,...` URL of the modality's size: k×k blocks averaged. */
  toDataUrl() {
    const source = this.mode === "drawn" ? this.normalised() : this.canvas;
    const big = source.getContext("2d").getImageData(0, 0, source.width, source.height).data;
    const out = document.createElement("canvas");
    out.width = this.width;
    out.height = this.height;
    const c = out.getContext("2d");
    const image = c.createImageData(this.width, this.height);
    const k = this.k;
    for (let y = 0; y < this.height; y++) {
      for (let x = 0; x < this.width; x++) {
        const sum = [0, 0, 0];
        for (let dy = 0; dy < k; dy++) {
          for (let dx = 0; dx < k; dx++) {
            const i = ((y * k + dy) * source.width + (x * k + dx)) * 4;
            for (let ch = 0; ch < 3; ch++) sum[ch] += big[i + ch];
          }
        }
        const mean = sum.map((s) => s / (k * k));
        const grey = (mean[0] + mean[1] + mean[2]) / 3;
        const o = (y * this.width + x) * 4;
        for (let ch = 0; ch < 3; ch++) image.data[o + ch] = this.channels === 1 ? grey : mean[ch];
        image.data[o + 3] = 255;
      }
    }
    c.putImageData(image, 0, 0);
    return out.toDataURL("image/png");
  }

  /** The base64 PNG for the API; an error when nothing was drawn or uploaded. */
  value() {
    if (this.mode === "empty") throw new Error("an image is empty: draw or upload one, or untick observed");
    return this.toDataUrl().split(",", 2)[1];
  }
}
