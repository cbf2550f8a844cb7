// Open web/dist in headless Chromium, wait until the app reports that the gallery is drawn,
// fail on console errors or a timeout, save screenshots. Usage: node web/test.js URL OUT.png
// Environment:
//   TRACT_EXPECT_FILE_ERROR=NAME  a model file is served broken: the page must say so in
//                                 #files, naming it, and still draw the gallery of the rest
//   TRACT_EXPECT_PROGRESSIVE=1    image gallery: the first cell drawn is a 1-step row, drawn
//                                 before the largest-step (teacher) row
//   TRACT_PROGRESS_SHOT=PATH      also a screenshot as soon as the first row is drawn
//   TRACT_EXPECT_MODULE=cpu|webgpu  the page must have loaded this build of the app
//   TRACT_EXPECT_MODELS=TEXT:N    the gallery's cells come from N models, each named with TEXT
//   TRACT_FIRST_ROW_WITHIN=S      the first 1-step row is on screen within S seconds of the last
//                                 model file's arrival (page time, data-models-at to data-first-row)
//   TRACT_HIDE_TAB=1              once the first row is drawn, tell the page its tab is hidden
//                                 (as a browser does; headless tabs never hide) for 3 s, then
//                                 shown: the page must say so and still
//                                 finish the gallery
const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");

(async () => {
  const [url, shot] = process.argv.slice(2);
  const gpuFlags = process.env.TRACT_WEB_WEBGPU === "0" ? [] : ["--enable-unsafe-webgpu", "--enable-features=Vulkan"];
  const expectFileError = process.env.TRACT_EXPECT_FILE_ERROR || "";
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--use-gl=angle", "--use-angle=swiftshader", ...gpuFlags],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  const logs = [];
  page.on("console", (m) => {
    logs.push(`[${m.type()}] ${m.text()}`);
    if (m.type() === "error" && !/favicon/.test(m.text())) errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  const t0 = Date.now();
  await page.goto(url);
  let ok = false;
  try {
    if (process.env.TRACT_PROGRESS_SHOT) {
      await page.waitForFunction(() => document.body.dataset.firstRow || document.querySelector("#status.error"), null, { timeout: 240000, polling: 50 });
      await page.screenshot({ path: process.env.TRACT_PROGRESS_SHOT });
    }
    if (process.env.TRACT_HIDE_TAB === "1") {
      await page.waitForFunction(() => document.body.dataset.firstRow, null, { timeout: 240000, polling: 50 });
      // headless Chromium keeps every tab visible (no minimise, no background tab): the page
      // is told it is hidden the way a browser tells it (document.hidden, visibilitychange)
      const setHidden = (h) => page.evaluate((h) => {
        if (h) {
          Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
          Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
        } else {
          delete document.hidden;
          delete document.visibilityState;
        }
        document.dispatchEvent(new Event("visibilitychange"));
      }, h);
      await setHidden(true);
      await page.waitForTimeout(3000);
      const state = await page.evaluate(() => document.visibilityState);
      await setHidden(false);
      if (state !== "hidden") errors.push(`the tab did not become hidden (visibilityState ${state})`);
      await page.waitForFunction(() => document.body.dataset.shownAt, null, { timeout: 10000, polling: 50 }).catch(() => {});
      const note = await page.textContent("#notes");
      if (!/hidden for/.test(note || "")) errors.push(`no note in the page about the hidden tab: '${note}'`);
      else console.log(`the page says: ${note}`);
    }
    await page.waitForFunction(() => document.title === "tract-studio: gallery drawn" || document.querySelector("#status.error"), null, { timeout: 240000, polling: 200 });
    ok = (await page.title()) === "tract-studio: gallery drawn";
  } catch (e) {
    errors.push("timed out waiting for the gallery: " + e.message);
  }
  await page.waitForTimeout(500);
  await page.screenshot({ path: shot });
  const status = await page.textContent("#status");
  const files = await page.$$eval("#files div", (ds) => ds.map((d) => [d.className, d.textContent]));
  const data = await page.evaluate(() => ({ ...document.body.dataset }));
  console.log(logs.join("\n"));
  console.log(`status: ${status}`);
  for (const [cls, text] of files) console.log(`file [${cls}] ${text}`);
  // cells in the order they were drawn: model|steps|seconds to compute|page time drawn
  const cells = (data.cells || "").split(";").filter(Boolean).map((c) => {
    const [model, steps, secs, t] = c.split("|");
    return { model, steps: +steps, secs: +secs, t: +t };
  });
  for (const c of cells) console.log(`cell drawn at ${c.t.toFixed(2)} s: ${c.model}, ${c.steps} step(s), computed in ${c.secs.toFixed(2)} s`);
  console.log(`first 1-step row on screen: ${data.firstRow || "-"} s (page time); gallery done: ${data.gallery} s (app time), ${((Date.now() - t0) / 1000).toFixed(1)} s wall`);
  if (data.firstRow && data.modelsAt) console.log(`first 1-step row ${(data.firstRow - data.modelsAt).toFixed(2)} s after the last model file arrived (at ${data.modelsAt} s)`);
  const within = process.env.TRACT_FIRST_ROW_WITHIN;
  if (within && !(data.firstRow && data.modelsAt && data.firstRow - data.modelsAt <= +within)) {
    errors.push(`the first 1-step row was not on screen within ${within} s of the last model file's arrival (first row ${data.firstRow || "-"} s, files at ${data.modelsAt || "-"} s)`);
  }
  if (expectFileError) {
    const bad = files.find(([cls, text]) => cls === "error" && text.includes(expectFileError));
    if (!bad) errors.push(`no message in the page naming the broken file ${expectFileError}`);
    else console.log(`the page names the broken file: ${bad[1]}`);
    if (files.filter(([cls]) => cls === "ok").length === 0) errors.push("no other model file loaded");
    if (cells.length === 0) errors.push("no gallery cell drawn from the other models");
  } else if (files.some(([cls]) => cls === "error")) {
    errors.push("a model file did not load: " + files.filter(([cls]) => cls === "error").map((f) => f[1]).join("; "));
  }
  const wantModule = process.env.TRACT_EXPECT_MODULE;
  if (wantModule && data.module !== wantModule) errors.push(`the page loaded the '${data.module}' module, expected '${wantModule}'`);
  else console.log(`module: ${data.module}`);
  if (process.env.TRACT_EXPECT_MODELS) {
    const [text, n] = process.env.TRACT_EXPECT_MODELS.split(":");
    const models = [...new Set(cells.map((c) => c.model))];
    if (models.length !== +n || !models.every((m) => m.includes(text))) errors.push(`expected ${n} models named with '${text}', the gallery has ${JSON.stringify(models)}`);
    else console.log(`models: ${models.join(", ")}`);
  }
  if (process.env.TRACT_EXPECT_PROGRESSIVE === "1") {
    const top = Math.max(...cells.map((c) => c.steps));
    const first = cells[0];
    const teacher = cells.find((c) => c.steps === top);
    if (!first || first.steps !== 1) errors.push(`the first cell drawn is not a 1-step row: ${JSON.stringify(first)}`);
    else if (!teacher || !(first.t < teacher.t)) errors.push(`the 1-step row (${first.t}) is not drawn before the ${top}-step row (${teacher && teacher.t})`);
    else console.log(`progressive: first 1-step row at ${first.t.toFixed(2)} s, ${top}-step row at ${teacher.t.toFixed(2)} s`);
  }
  await browser.close();
  if (!ok || errors.length) {
    console.error("FAILED:\n" + errors.join("\n"));
    process.exit(1);
  }
  console.log("web test passed");
})();
