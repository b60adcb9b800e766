// Drawing pad for the MNIST service: sends the canvas as a PNG to POST /predict, at most one request
// in flight and one every THROTTLE_MS while drawing, and shows each backend's probabilities as bars.
"use strict";

const THROTTLE_MS = 150;
const STROKE_WIDTH = 20; // pixels on the 280x280 pad: a digit drawn 200 px tall gets MNIST-like 2 px strokes

const pad = document.getElementById("pad");
const context = pad.getContext("2d");
const seen = document.getElementById("seen");
const results = document.getElementById("results");
const statusLine = document.getElementById("status");
const agreement = document.getElementById("agreement");

let version = 0; // bumped on every change to the drawing; the results show which version they describe
let generation = 0; // bumped on Clear, so a late response about an erased drawing is dropped
let hasInk = false;
let drawing = false;
let inFlight = false;
let timer = null;
let lastSent = -Infinity;
const panels = {};

function setVersion(value) {
  version = value;
  pad.dataset.version = String(value);
}

function clearPad() {
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, pad.width, pad.height);
  context.fillStyle = "#000000";
  seen.getContext("2d").clearRect(0, 0, seen.width, seen.height);
  hasInk = false;
  generation += 1;
  setVersion(version + 1);
  results.dataset.version = String(version);
  for (const panel of Object.values(panels)) {
    showProbabilities(panel, null);
  }
  agreement.textContent = "";
  statusLine.textContent = "Draw with the mouse or a finger.";
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

function startStroke(event) {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  const [x, y] = point(event);
  // A zero-length stroke draws nothing, so a tap leaves a round dot instead.
  context.beginPath();
  context.arc(x, y, STROKE_WIDTH / 2, 0, 2 * Math.PI);
  context.fill();
  context.beginPath();
  context.moveTo(x, y);
  changed();
}

function continueStroke(event) {
  if (!drawing) {
    return;
  }
  event.preventDefault();
  const [x, y] = point(event);
  context.lineTo(x, y);
  context.stroke();
  changed();
}

function endStroke() {
  drawing = false;
}

function changed() {
  hasInk = true;
  setVersion(version + 1);
  schedule();
}

function schedule() {
  // A request in flight reschedules itself when it ends; a pending timer already covers this change.
  if (inFlight || timer !== null) {
    return;
  }
  const wait = Math.max(0, lastSent + THROTTLE_MS - performance.now());
  timer = setTimeout(send, wait);
}

async function send() {
  timer = null;
  if (!hasInk) {
    return;
  }
  inFlight = true;
  lastSent = performance.now();
  const sentVersion = version;
  const sentGeneration = generation;
  try {
    const blob = await new Promise((resolve) => pad.toBlob(resolve, "image/png"));
    const form = new FormData();
    form.append("file", blob, "drawing.png");
    const response = await fetch("/predict?include_input=true", { method: "POST", body: form });
    const body = await response.json();
    if (sentGeneration !== generation) {
      return;
    }
    if (!response.ok) {
      statusLine.textContent = `Not predicted: ${body.detail}`;
    } else {
      showPrediction(body);
    }
    results.dataset.version = String(sentVersion);
  } catch (error) {
    statusLine.textContent = `The server did not answer (${error.message}).`;
  } finally {
    inFlight = false;
    if (version !== sentVersion && hasInk) {
      schedule();
    }
  }
}

function showPrediction(body) {
  for (const name of body.backends) {
    showProbabilities(panels[name], body.results[name]);
  }
  const digits = body.backends.map((name) => body.results[name].digit);
  if (body.backends.length > 1) {
    const labels = body.backends.map((name) => panels[name].label).join(" and ");
    agreement.textContent = body.agree ? `${labels} agree: ${digits[0]}` : `${labels} disagree: ${digits.join(" vs ")}`;
  }
  statusLine.textContent = `Answered in ${body.milliseconds.toFixed(1)} ms.`;
  drawSeen(body.input);
}

function showProbabilities(panel, result) {
  panel.digit.textContent = result ? String(result.digit) : "–";
  panel.timing.textContent = result ? `${result.milliseconds.toFixed(2)} ms inference` : "\u00a0";
  panel.bars.forEach((bar, digit) => {
    const probability = result ? result.probabilities[digit] : 0;
    bar.fill.style.width = `${(100 * probability).toFixed(1)}%`;
    bar.value.textContent = result ? `${(100 * probability).toFixed(1)}%` : "";
    bar.item.classList.toggle("top", Boolean(result) && digit === result.digit);
  });
}

function drawSeen(input) {
  if (!input) {
    return;
  }
  const seenContext = seen.getContext("2d");
  const pixels = seenContext.createImageData(28, 28);
  input.flat().forEach((level, index) => {
    pixels.data.set([level, level, level, 255], 4 * index);
  });
  seenContext.putImageData(pixels, 0, 0);
}

function addPanel(backend) {
  const article = document.getElementById("backend-template").content.firstElementChild.cloneNode(true);
  article.dataset.backend = backend.name;
  article.querySelector(".name").textContent = backend.label;
  const list = article.querySelector(".bars");
  const bars = [];
  for (let digit = 0; digit < 10; digit += 1) {
    const item = document.createElement("li");
    item.innerHTML = `<span class="label">${digit}</span><span class="track"><span class="fill"></span></span><span class="value"></span>`;
    list.append(item);
    bars.push({ item, fill: item.querySelector(".fill"), value: item.querySelector(".value") });
  }
  results.append(article);
  panels[backend.name] = { label: backend.label, digit: article.querySelector(".digit"), timing: article.querySelector(".timing"), bars };
}

async function loadModel() {
  try {
    const response = await fetch("/model");
    const model = await response.json();
    for (const backend of model.backends) {
      addPanel(backend);
    }
    const accuracy = model.test_accuracy === null ? "no recorded test accuracy" : `test accuracy ${(100 * model.test_accuracy).toFixed(2)}%`;
    const trainedBy = model.checkpoint.metadata.backend ? `trained by ${model.checkpoint.metadata.backend}, ` : "";
    document.getElementById("model-info").textContent =
      `${model.params.toLocaleString("en")} params, ${trainedBy}${accuracy}. Each backend below runs the same checkpoint.`;
    document.body.dataset.ready = "true";
  } catch (error) {
    document.getElementById("model-info").textContent = `Could not load /model (${error.message}).`;
  }
}

context.lineWidth = STROKE_WIDTH;
context.lineCap = "round";
context.lineJoin = "round";
context.strokeStyle = "#000000";
clearPad();
pad.addEventListener("pointerdown", startStroke);
pad.addEventListener("pointermove", continueStroke);
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
document.getElementById("clear").addEventListener("click", clearPad);
loadModel();
