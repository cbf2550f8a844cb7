// Open web/dist in headless Chromium, wait until the app reports that the gallery is drawn,
// fail on console errors or a timeout, save a screenshot. Usage: node web/test.js URL OUT.png
const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");

(async () => {
  const [url, shot] = process.argv.slice(2);
  const gpuFlags = process.env.TRACT_WEB_WEBGPU === "0" ? [] : ["--enable-unsafe-webgpu", "--enable-features=Vulkan"];
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
    await page.waitForFunction(() => document.title === "tract-studio: gallery drawn" || document.querySelector("#status.error"), null, { timeout: 240000, polling: 500 });
    ok = (await page.title()) === "tract-studio: gallery drawn";
  } catch (e) {
    errors.push("timed out waiting for the gallery: " + e.message);
  }
  await page.waitForTimeout(500);
  await page.screenshot({ path: shot });
  const status = await page.textContent("#status");
  const gallery = await page.getAttribute("body", "data-gallery");
  console.log(logs.join("\n"));
  console.log(`status: ${status}`);
  console.log(`time to first gallery: ${gallery} s (page reported), ${((Date.now() - t0) / 1000).toFixed(1)} s wall`);
  await browser.close();
  if (!ok || errors.length) {
    console.error("FAILED:\n" + errors.join("\n"));
    process.exit(1);
  }
  console.log("web test passed");
})();
