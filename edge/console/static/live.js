// The live view's script (issue #19), served from the package (no CDN, no build step, no library).
// Per lane: the plates the daemon's detector boxed and the lane's loops, read from /live/LANE.json every
// second; and for operators the region-of-interest editor: drag the corners on the frame, add or remove a
// point, then "Save to the config" posts the form (the console checks it as `parkgate config check` does).
// Without this script the page still shows the frames and the form still saves a typed region.

const POLL_MS = 1000;
const MIN_POINTS = 3;
const MAX_POINTS = 64;
const WHOLE_FRAME = [[0.05, 0.05], [0.95, 0.05], [0.95, 0.95], [0.05, 0.95]];

/** "x,y x,y" or "x,y;x,y" as [[x, y], ...]; null when it is not a list of number pairs. */
export function parsePoints(text) {
  const parts = (text || "").trim().split(/[;\s]+/).filter(Boolean);
  const points = parts.map((part) => part.split(",").map(Number));
  if (!points.length || points.some((p) => p.length !== 2 || p.some((v) => !Number.isFinite(v)))) {
    return null;
  }
  return points;
}

const round = (value) => String(Math.round(value * 1000) / 1000);
const clamp = (value) => Math.min(1, Math.max(0, value));
export const formText = (points) => points.map(([x, y]) => `${round(x)},${round(y)}`).join(";");
const svgText = (points) => points.map(([x, y]) => `${round(x)},${round(y)}`).join(" ");

/** Where to insert a new point: after the selected one, else on the longest edge. */
function insertAt(points, selected) {
  if (selected !== null) {
    return selected + 1;
  }
  let best = 0;
  let longest = -1;
  points.forEach(([x, y], i) => {
    const [nx, ny] = points[(i + 1) % points.length];
    const length = Math.hypot(nx - x, ny - y);
    if (length > longest) {
      longest = length;
      best = i + 1;
    }
  });
  return best;
}

class LiveLane {
  constructor(section) {
    this.section = section;
    this.name = section.dataset.lane;
    this.frame = section.querySelector(".frame");
    this.state = section.querySelector(".lane-state");
    this.plates = section.querySelector("ul.plates");
    this.form = section.querySelector("form.roi-save");
    this.polygon = section.querySelector("polygon.edit");
    this.size = null; // the camera frame's [width, height] in pixels, from the daemon
    this.points = null;
    this.selected = null;
    this.handles = [];
    if (this.form) {
      this.input = this.form.querySelector("input[name=roi]");
      for (const button of this.form.querySelectorAll("button[type=button]")) {
        button.hidden = false;
      }
      this.form.querySelector(".roi-edit").addEventListener("click", () => this.edit());
      this.form.querySelector(".roi-add").addEventListener("click", () => this.add());
      this.form.querySelector(".roi-remove").addEventListener("click", () => this.remove());
      this.input.addEventListener("input", () => this.typed());
    }
  }

  async poll() {
    try {
      const response = await fetch(`/live/${encodeURIComponent(this.name)}.json`,
        { credentials: "same-origin", cache: "no-store" });
      if (response.redirected || !response.ok) {
        this.state.textContent = response.redirected ? "logged out: reload the page and log in again"
          : `the console answered ${response.status}`;
        return;
      }
      this.show(await response.json());
    } catch (error) {
      this.state.textContent = `no answer from the console (${error})`;
    }
  }

  show(info) {
    this.state.textContent = info.state;
    this.size = info.frame || this.size;
    this.plates.replaceChildren(...info.plates.map((plate) => {
      const item = document.createElement("li");
      item.textContent = plate.text;
      if (plate.width_px !== undefined) {
        item.dataset.width = plate.width_px;
        item.dataset.box = plate.box.join(",");
        item.className = !plate.in_roi ? "outside" : plate.wide ? "wide" : "narrow";
      }
      return item;
    }));
  }

  /** The polygon to start editing from: a proposal, the config's ROI, or (pixels) the same in fractions. */
  startPoints() {
    const data = this.section.dataset;
    const given = parsePoints(data.proposed) || parsePoints(data.roi);
    if (given) {
      return given;
    }
    const pixels = parsePoints(data.pixelRoi);
    if (pixels && this.size) {
      const [width, height] = this.size;
      return pixels.map(([x, y]) => [clamp(x / width), clamp(y / height)]);
    }
    return WHOLE_FRAME.map((p) => [...p]);
  }

  edit() {
    if (this.points === null) {
      this.points = this.startPoints();
    }
    this.section.classList.add("editing");
    this.draw();
  }

  add() {
    this.edit();
    if (this.points.length >= MAX_POINTS) {
      return;
    }
    const at = insertAt(this.points, this.selected);
    const [x, y] = this.points[at - 1];
    const [nx, ny] = this.points[at % this.points.length];
    this.points.splice(at, 0, [(x + nx) / 2, (y + ny) / 2]);
    this.selected = at;
    this.draw();
  }

  remove() {
    this.edit();
    if (this.points.length <= MIN_POINTS) {
      return;
    }
    this.points.splice(this.selected ?? this.points.length - 1, 1);
    this.selected = null;
    this.draw();
  }

  typed() {
    const points = parsePoints(this.input.value);
    if (points && points.every(([x, y]) => x >= 0 && x <= 1 && y >= 0 && y <= 1)) {
      this.points = points;
      this.selected = null;
      this.draw(false);
    }
  }

  draw(toInput = true) {
    this.polygon.setAttribute("points", svgText(this.points));
    if (toInput) {
      this.input.value = formText(this.points);
    }
    for (const handle of this.handles) {
      handle.remove();
    }
    this.handles = this.points.map(([x, y], index) => {
      const handle = document.createElement("div");
      handle.className = index === this.selected ? "handle selected" : "handle";
      handle.dataset.index = index;
      handle.style.left = `${x * 100}%`;
      handle.style.top = `${y * 100}%`;
      handle.addEventListener("pointerdown", (event) => this.grab(event, index));
      this.frame.append(handle);
      return handle;
    });
  }

  grab(event, index) {
    event.preventDefault();
    const handle = event.currentTarget;
    handle.setPointerCapture(event.pointerId);
    this.selected = index;
    for (const other of this.handles) {
      other.classList.toggle("selected", other === handle);
    }
    const move = (moved) => {
      const rect = this.frame.getBoundingClientRect();
      const point = [clamp((moved.clientX - rect.left) / rect.width), clamp((moved.clientY - rect.top) / rect.height)];
      this.points[index] = point;
      handle.style.left = `${point[0] * 100}%`;
      handle.style.top = `${point[1] * 100}%`;
      this.polygon.setAttribute("points", svgText(this.points));
      this.input.value = formText(this.points);
    };
    const release = () => {
      handle.removeEventListener("pointermove", move);
      handle.removeEventListener("pointerup", release);
      handle.removeEventListener("pointercancel", release);
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", release);
    handle.addEventListener("pointercancel", release);
  }
}

const lanes = [...document.querySelectorAll("section.live")].map((section) => new LiveLane(section));
const pollAll = () => Promise.all(lanes.map((lane) => lane.poll()));
pollAll();
setInterval(pollAll, POLL_MS);
