// Drives the pipewise dashboard in headless Chromium, as each role would.
//
//   node dashboard.mjs PLAN.json
//
// PLAN.json: { "base": "http://127.0.0.1:PORT", "shots": "DIR",
//   "users": [{ "role": "rep", "user_id": "...", "password": "...",
//               "own_deal": "...", "foreign_deal": "...", "rep": "...",
//               "call": "..." | null }, ...],
//   "decide": { "role": "manager", "rep": "...", "reason": "..." },
//   "override": { "role": "manager", "deal": "...", "reason": "..." } }
//
// For each user: signs in, visits every page, checks its key content and
// that the console shows no error, and saves a screenshot of each page (and
// of a phone-sized view of a few) under DIR. A rep asking for another rep's
// deal must get 404; the manager dismisses a recommendation with a reason
// and takes a deal out of the forecast with a reason.
// Prints a JSON summary; exits 1 on any failure.
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
mkdirSync(plan.shots, { recursive: true });
const failures = [];
const visited = [];
const fail = (who, what) => failures.push(`${who}: ${what}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run"],
});

async function check(page, who, name, path, expect, opts = {}) {
  const errors = [];
  const onConsole = (m) => { if (m.type() === "error") errors.push(m.text()); };
  const onError = (e) => errors.push(String(e));
  page.on("console", onConsole);
  page.on("pageerror", onError);
  const resp = await page.goto(plan.base + path, { waitUntil: "load" });
  const status = resp ? resp.status() : 0;
  // Charts draw after load.
  await page.waitForTimeout(opts.wait ?? 250);
  const want = opts.status ?? 200;
  if (status !== want) fail(who, `${path}: status ${status}, expected ${want}`);
  const text = await page.locator("main").innerText().catch(() => "");
  for (const e of expect) {
    if (e instanceof RegExp ? !e.test(text) : !text.includes(e)) {
      fail(who, `${path}: no ${e} on the page`);
    }
  }
  if (opts.charts) {
    const drawn = await page.locator("canvas[data-chart]").evaluateAll(
      (cs) => cs.filter((c) => c.width > 0 && c.getContext("2d") && c.closest("figure:not([hidden])")).length);
    if (drawn < opts.charts) fail(who, `${path}: ${drawn} charts drawn, expected ${opts.charts}`);
  }
  page.off("console", onConsole);
  page.off("pageerror", onError);
  // Chromium logs a page answered with an error status as a failed load:
  // expected when the check asks for that status.
  for (const e of errors) {
    if (want !== 200 && status === want && e.includes(`status of ${want}`)) continue;
    fail(who, `${path}: console error: ${e}`);
  }
  await page.screenshot({ path: `${plan.shots}/${who}-${name}.png`, fullPage: opts.full ?? true });
  visited.push({ who, path, status });
  return text;
}

for (const u of plan.users) {
  const who = u.role;
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  // Signed out, a page sends to the sign-in page and back after it.
  await page.goto(plan.base + "/deals");
  if (!page.url().includes("/sign-in")) fail(who, `signed out, /deals went to ${page.url()}`);
  await page.screenshot({ path: `${plan.shots}/${who}-sign-in.png` });
  // A wrong password is refused.
  await page.fill("#user_id", u.user_id);
  await page.fill("#password", "not-the-password");
  await page.click("button[type=submit]");
  if (!(await page.locator(".error").innerText().catch(() => "")).includes("do not match")) {
    fail(who, "a wrong password was not refused");
  }
  await page.fill("#password", u.password);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  if (!page.url().endsWith("/deals")) fail(who, `after sign-in: ${page.url()}, expected /deals`);

  // Keyboard: the first Tab reaches the skip link.
  await page.goto(plan.base + "/");
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.className);
  if (focused !== "skip") fail(who, `the first Tab focuses ${focused}, not the skip link`);

  const heading = { rep: "Your book", manager: "Your team", director: "The organisation" }[who];
  await check(page, who, "home", "/", [heading, "Open pipeline", "Most at risk"]);
  await check(page, who, "deals", "/deals", ["Pipeline risk", "At risk", "Close period"]);
  await check(page, who, "deals-ahead", "/deals?evidence=ahead&sort=-amount", ["Pipeline risk"]);
  await check(page, who, "deal", `/deals/${u.own_deal}`, ["Win probability", "Slip risk", "Timeline", "Entered vs evidence", "Pushing it up"]);
  await check(page, who, "forecast", "/forecast", ["Forecast", "Most likely (P50)", "The coming months", "How far to trust it", "What moved"], { charts: 1, wait: 600 });
  await check(page, who, "coaching", who === "rep" ? `/coaching/${u.user_id}` : "/coaching",
    who === "rep" ? ["The plan", "Against peers and top performers", "Skills"] : ["Team headlines", "First priority"],
    who === "rep" ? { charts: 2, wait: 600 } : {});
  await check(page, who, "rep-coaching", `/coaching/${u.rep}`, ["The plan", "Against peers and top performers", "Skills"], { charts: 2, wait: 600 });
  await check(page, who, "calls", "/calls", ["Calls", "Rep talk"]);
  if (u.call) await check(page, who, "call", `/calls/${u.call}`, ["Transcript", "Talk ratio", "Questions"]);
  await check(page, who, "reps", "/reps", ["Stage bias", "95% interval"], { charts: 1, wait: 600 });
  await check(page, who, "territories", "/territories", who === "rep"
    ? ["Segments", "Renewals at risk", "Next product"]
    : ["Segments", "Proposed account plan", "Balance per rep", "Largest moves", "Renewals at risk", "Next product", "Whitespace"]);
  await check(page, who, "leads", "/leads", ["Leads", "Follow-ups", "Speed to lead", "Open leads"]);
  // A lead's page: the drafted first reply; for managers up, who should own it.
  const leadLink = page.locator("#open a[href^='/leads/']").first();
  if (await leadLink.count()) {
    const href = await leadLink.getAttribute("href");
    await check(page, who, "lead", href,
      who === "rep" ? ["Draft first reply", "Details used"] : ["Draft first reply", "Who should own it"]);
  } else fail(who, "no lead to open on /leads");
  // The rep marks the first follow-up of the day done; the queue moves on.
  if (who === "rep") {
    await page.goto(plan.base + "/leads");
    const done = page.locator("#queue button[value=done]").first();
    if (await done.count()) {
      const row = await page.locator("#queue tbody tr").first().innerText();
      await Promise.all([page.waitForNavigation(), done.click()]);
      const text = await page.locator("main").innerText();
      if (!text.includes("Marked: lead")) fail(who, "marking a task done was not confirmed");
      if (!/\bdone\b/.test(await page.locator("#queue").innerText())) fail(who, `the task marked done is not shown as done (was: ${row})`);
      await page.screenshot({ path: `${plan.shots}/${who}-leads-marked.png`, fullPage: true });
    } else fail(who, "no follow-up to mark on /leads");
  }
  await check(page, who, "actions", "/actions", who === "rep"
    ? ["My day", "expected", "Dismiss because"]
    : ["My day", "expected", "Adherence", "Message tests", "seq-inbound-2-a", "Probability best"]);
  // The rep dismisses the first action as not useful; the list confirms it.
  if (who === "rep") {
    const form = page.locator("form[action='/actions/dismiss']").first();
    if (await form.count()) {
      await form.locator("select[name=reason]").selectOption("not_useful");
      await Promise.all([page.waitForNavigation(), form.locator("button[type=submit]").click()]);
      if (!(await page.locator("main").innerText()).includes("Dismissed:")) fail(who, "a dismissal was not confirmed");
      await page.screenshot({ path: `${plan.shots}/${who}-actions-dismissed.png`, fullPage: true });
    } else fail(who, "no action to dismiss on /actions");
  }
  await check(page, who, "my-data", "/me", ["My data", "Profile", "Records linked to you", "Estimates made of you", "Who read your data"]);
  if (who === "director") {
    await check(page, who, "pay", "/pay?vs=plan-steeper", ["Pay and ROI", "Incentive plans", "plan-ae", "Payout against attainment", "Pay dispersion (Gini)", "Return on AI-assisted coaching"]);
    await check(page, who, "pay-roi", "/pay?roi=1&reps=100&managers=10&manager_salary=150000&coaching_hours_before=2&coaching_hours_after=1&software_per_rep=500&win_rate_change=0.03", ["Coaching cost a year", "750,000", "375,000", "Payback"]);
    await check(page, who, "admin-imports", "/admin/imports", ["Imports", "Import files"]);
    await check(page, who, "admin-models", "/admin/models", ["Models", "win v"]);
    await check(page, who, "admin-model", "/admin/models/win/1", ["Model card", "Fairness by group"]);
    await check(page, who, "admin-monitor", "/admin/monitor/win", ["Monitor: win model", "Alerts", "Inputs: the open pipeline", "Accuracy by month", "held-out"]);
    await check(page, who, "admin-fairness", "/admin/fairness/win", ["Fairness: win model", "Verdict", "The model by region", "The record by group"]);
    await check(page, who, "admin-tokens", "/admin/tokens", ["API tokens", "New token"]);
    await check(page, who, "admin-audit", "/admin/audit", ["Audit log", "read"]);
    // An import checked only (a file with a bad date): the job's page
    // follows it to its report, with the error's file, line and column.
    await page.goto(plan.base + "/admin/imports");
    await page.setInputFiles("#files", {
      name: "opportunities.csv", mimeType: "text/csv",
      buffer: Buffer.from("id,name,account_id,owner_id,stage,amount,close_date,created_at\nx-1,Test deal,,,prospecting,1000,not-a-date,2025-01-01\n"),
    });
    await page.check("input[name=dry_run]");
    await Promise.all([page.waitForNavigation(), page.click("form[enctype] button[type=submit]")]);
    if (!/\/admin\/imports\/[^/]+$/.test(page.url())) fail(who, `the upload went to ${page.url()}`);
    let body = "";
    for (let i = 0; i < 60; i++) {
      body = await page.locator("main").innerText();
      if (/Status: (succeeded|failed)/.test(body)) break;
      await page.waitForTimeout(1000);
      await page.reload();
    }
    if (!/Status: (succeeded|failed)/.test(body)) fail(who, "the import job did not finish");
    if (!body.includes("not-a-date") && !body.includes("close_date")) fail(who, "the import report does not name the bad value");
    await page.screenshot({ path: `${plan.shots}/${who}-admin-import-job.png`, fullPage: true });
    // A token created for the manager, shown once, then revoked.
    await page.goto(plan.base + "/admin/tokens");
    await page.fill("#t-user", plan.users.find((x) => x.role === "manager").user_id);
    await page.fill("#t-label", "browser test");
    await Promise.all([page.waitForNavigation(), page.click("form.filters button[type=submit]")]);
    const secret = await page.locator("code.secret").innerText().catch(() => "");
    if (!secret.startsWith("pw_")) fail(who, "the new token is not shown");
    await page.screenshot({ path: `${plan.shots}/${who}-admin-token-created.png`, fullPage: true });
    // Reloading shows the list: not the secret again, not a second token.
    await page.reload();
    if (await page.locator("code.secret").count()) fail(who, "the token's secret is shown again on reload");
    const made = await page.locator("tr", { hasText: "browser test" }).count();
    if (made !== 1) fail(who, `${made} tokens labelled "browser test" after a reload, expected 1`);
    const revoke = page.locator("tr", { hasText: "browser test" }).locator("button.danger");
    await Promise.all([page.waitForNavigation(), revoke.click()]);
    if (!(await page.locator("tr", { hasText: "browser test" }).innerText()).includes("revoked")) {
      fail(who, "the token was not revoked");
    }
  } else {
    await check(page, who, "admin-refused", "/admin/imports", ["Not allowed"], { status: 403 });
  }
  // Scope: someone else's deal is not found, as if it did not exist.
  if (u.foreign_deal) {
    await check(page, who, "foreign-deal", `/deals/${u.foreign_deal}`, ["Not found"], { status: 404 });
  }

  // The manager dismisses a recommendation with a reason.
  if (plan.decide && plan.decide.role === who) {
    await page.goto(`${plan.base}/coaching/${plan.decide.rep}`);
    const form = page.locator("details.decide").first();
    await form.locator("summary").click();
    await form.locator("input[value=dismiss]").check();
    await form.locator("textarea[name=reason]").fill(plan.decide.reason);
    await Promise.all([page.waitForNavigation(), form.locator("button[type=submit]").click()]);
    const text = await page.locator("main").innerText();
    if (!text.includes("Decision recorded")) fail(who, "the dismissal was not confirmed");
    if (!text.includes(plan.decide.reason)) fail(who, "the dismissal's reason is not shown");
    await page.screenshot({ path: `${plan.shots}/${who}-decision.png`, fullPage: true });
    // Dismissing without a reason is refused, with the form kept.
    await page.goto(`${plan.base}/coaching/${plan.decide.rep}`);
    const again = page.locator("details.decide").nth(1);
    if (await again.count()) {
      await again.locator("summary").click();
      await again.locator("input[value=dismiss]").check();
      await Promise.all([page.waitForNavigation(), again.locator("button[type=submit]").click()]);
      const t2 = await page.locator("main").innerText();
      if (!t2.includes("say why")) fail(who, "a dismissal without a reason was not refused");
      // An edit shows the recommendation as the manager rewrote it.
      const edit = page.locator("details.decide").nth(1);
      await edit.locator("summary").click();
      await edit.locator("input[value=edit]").check();
      await edit.locator("textarea[name=reason]").fill("Shorter, for this quarter");
      await edit.locator("textarea[name=text]").fill("Agree a dated next step on every call this month");
      await Promise.all([page.waitForNavigation(), edit.locator("button[type=submit]").click()]);
      const t3 = await page.locator("main").innerText();
      if (!t3.includes("As edited: Agree a dated next step on every call this month")) {
        fail(who, "the edited recommendation is not shown");
      }
    }
  }

  // A rep sees whether a deal is in the forecast, but cannot take it out.
  if (who === "rep") {
    await page.goto(`${plan.base}/deals/${u.own_deal}`);
    if (await page.locator("#ov-reason").count()) fail(who, "a rep is offered the forecast override");
  }
  // The manager takes a deal out of the forecast with a reason.
  if (plan.override && plan.override.role === who) {
    await page.goto(`${plan.base}/deals/${plan.override.deal}`);
    await page.fill("#ov-reason", plan.override.reason);
    await Promise.all([page.waitForNavigation(), page.click("#override button[type=submit]")]);
    const text = await page.locator("main").innerText();
    if (!text.includes("Taken out of the forecast")) fail(who, "the override is not shown on the deal");
    if (!text.includes(plan.override.reason)) fail(who, "the override's reason is not shown");
    await page.screenshot({ path: `${plan.shots}/${who}-override.png`, fullPage: true });
    await check(page, who, "forecast-after-override", "/forecast", ["taken out by managers", plan.override.deal], { wait: 600 });
  }

  // A phone.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true,
    storageState: await context.storageState() });
  const p2 = await phone.newPage();
  await check(p2, who, "phone-home", "/", [heading]);
  await check(p2, who, "phone-deals", "/deals", ["Pipeline risk"]);
  const overflow = await p2.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 2) fail(who, `on a phone /deals is ${overflow}px wider than the screen`);
  await phone.close();

  // Signing out ends the session.
  await page.goto(plan.base + "/");
  await Promise.all([page.waitForNavigation(), page.click("header form button")]);
  await page.goto(plan.base + "/");
  if (!page.url().includes("/sign-in")) fail(who, "after signing out, / did not ask to sign in");
  await context.close();
}

await browser.close();
console.log(JSON.stringify({ visited: visited.length, failures }, null, 2));
process.exit(failures.length ? 1 : 0);
