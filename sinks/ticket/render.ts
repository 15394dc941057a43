/**
 * A diagnosis report as a ticket: JSON (the report itself), Markdown (for issue trackers and
 * chat) and one self-contained HTML page (inline CSS and SVG, nothing fetched) with the memory
 * of the suspect and its suspicious interval, the growth pattern, and the ranked allocation
 * stacks with function, file, line and how they grew. Pure.
 */
import type { DiagnosisReport } from "../snapshot/report.ts";

export interface Ticket {
  id: string;
  title: string;
  json: string;
  markdown: string;
  html: string;
}

export function renderTicket(report: DiagnosisReport): Ticket {
  return {
    id: report.id,
    title: ticketTitle(report),
    json: `${JSON.stringify(report, null, 2)}\n`,
    markdown: ticketMarkdown(report),
    html: ticketHtml(report),
  };
}

export function ticketTitle(r: DiagnosisReport): string {
  const top = r.culprits[0]?.frames[0];
  const where =
    top === undefined ? "no growing stack found" : `${top.fn || "(anonymous)"} at ${location(top)}`;
  return `Memory leak in ${r.component} (${r.process}, pid ${r.pid}) on ${r.host}: ${where}`;
}

// --- Markdown ---------------------------------------------------------------------------------

export function ticketMarkdown(r: DiagnosisReport): string {
  const out: string[] = [`# ${mdText(ticketTitle(r))}`, ""];
  const top = r.culprits[0];
  if (top !== undefined) {
    out.push(
      `**Most likely cause:** \`${mdCode(top.frames[0]?.fn || "(anonymous)")}\` in ${mdText(location(top.frames[0]))} — ` +
        `grew ${formatBytes(top.growthBytes)} (${percent(top.growthShare)} of all growth) over ${formatDuration(r.windowMs)}.`,
      "",
    );
  }
  out.push("| | |", "|---|---|");
  for (const [k, v] of summaryRows(r)) out.push(`| ${k} | ${mdCell(v)} |`);
  out.push("", "## Ranked allocation stacks", "");
  if (r.culprits.length === 0) out.push("No stack grew between the profiles.", "");
  for (const c of r.culprits) {
    const leaf = c.frames[0];
    out.push(
      `${c.rank}. \`${mdCode(leaf?.fn || "(anonymous)")}\` — ${mdText(location(leaf))} — grew ${formatBytes(c.growthBytes)} ` +
        `(${percent(c.growthShare)}), in ${c.growingIntervals} of ${c.intervals} intervals`,
      `   - ${mdText(c.reason)}`,
      `   - live bytes per profile: ${c.bytes.map(formatBytes).join(" → ")}`,
      "",
      "   ```",
      ...c.frames.slice(0, 12).map((f) => `   ${f.fn || "(anonymous)"}  ${location(f)}`),
      ...(c.frames.length > 12 ? [`   … ${c.frames.length - 12} more frames`] : []),
      "   ```",
      "",
    );
  }
  out.push("## Profiles", "", "| # | taken | live bytes | object |", "|---|---|---|---|");
  r.profiles.forEach((p, i) => {
    out.push(`| ${i + 1} | ${iso(p.takenAt)} | ${formatBytes(p.bytes)} | \`${mdCode(p.id)}\` |`);
  });
  out.push(
    "",
    "## Hosts considered",
    "",
    "| host | pid | severity | clarity | VMs | outcome |",
    "|---|---|---|---|---|---|",
  );
  for (const c of r.candidates)
    out.push(
      `| ${mdCell(c.host)} | ${c.pid} | ${c.severity.toFixed(2)} | ${c.clarity === undefined ? "–" : c.clarity.toFixed(2)} | ` +
        `${c.vms ?? "–"} | ${mdCell(c.outcome)} |`,
    );
  out.push("", `Ticket \`${r.id}\`, case \`${mdCode(r.caseId)}\`, suspect \`${mdCode(r.suspectId)}\`.`, "");
  return out.join("\n");
}

function summaryRows(r: DiagnosisReport): [string, string][] {
  const refs =
    r.references.length === 0
      ? "none (no healthy host of the component was profiled)"
      : r.references
          .map(
            (x) =>
              `${x.host} (${x.match === "cluster" ? "same cluster" : `cluster ${x.fingerprint.cluster}`}, version ${
                x.fingerprint.version
              })`,
          )
          .join(", ");
  return [
    ["Component", r.component],
    ["Host", `${r.host}${r.cluster !== undefined ? ` (cluster ${r.cluster})` : ""}`],
    ["Process", `${r.process}, pid ${r.pid}`],
    ...(r.version !== undefined || r.os !== undefined
      ? ([["Version / OS", `${r.version ?? "?"} / ${r.os ?? "?"}`]] as [string, string][])
      : []),
    ["Growth pattern", `${r.pattern}, ${formatBytes(r.growthBytesPerHour)}/h`],
    ["Severity", r.severity.toFixed(2)],
    [
      "Suspicious interval",
      `${iso(r.interval.start)} – ${iso(r.interval.end)} (${formatDuration(r.interval.end - r.interval.start)})`,
    ],
    ["Detected", iso(r.detectedAt)],
    ["Diagnosed", iso(r.diagnosedAt)],
    ["Profiles", `${r.profiles.length} over ${formatDuration(r.windowMs)}; ${r.completion}`],
    ["Method", r.method === "series" ? "growth over the series of profiles" : "last two profiles (fallback)"],
    [
      "Filtered out",
      `${r.dropped.tooLarge} stack(s) too large for the leak's rate, ${r.dropped.onReferences} growing on healthy hosts too`,
    ],
    ["References", refs],
  ];
}

// --- HTML -------------------------------------------------------------------------------------

const COLORS = ["#c0392b", "#2471a3", "#229954", "#b9770e", "#7d3c98"];

export function ticketHtml(r: DiagnosisReport): string {
  const title = ticketTitle(r);
  const memory =
    r.series !== undefined && r.series.ts.length >= 2
      ? svgPlot({
          lines: [{ name: `${r.process} memory`, xs: r.series.ts, ys: r.series.bytes, color: "#2471a3" }],
          shade: [r.interval.start, r.interval.end],
          caption: "process memory (hourly aggregate); shaded: the suspicious interval",
        })
      : "";
  const totals = svgPlot({
    lines: [
      {
        name: "live sampled heap",
        xs: r.profiles.map((p) => p.takenAt),
        ys: r.profiles.map((p) => p.bytes),
        color: "#555",
      },
      ...r.culprits.slice(0, COLORS.length - 1).map((c, i) => ({
        name: `#${c.rank} ${c.frames[0]?.fn || "(anonymous)"}`,
        xs: r.profiles.map((p) => p.takenAt),
        ys: c.bytes,
        color: COLORS[i]!,
      })),
    ],
    caption: "heap profiles: live bytes in total and of the top stacks",
  });
  const rows = summaryRows(r)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`)
    .join("\n");
  const culprits = r.culprits
    .map((c, i) => {
      const leaf = c.frames[0];
      const frames = c.frames
        .slice(0, 20)
        .map(
          (f) =>
            `<li><code>${esc(f.fn || "(anonymous)")}</code> <span class="loc">${esc(location(f))}</span></li>`,
        )
        .join("");
      return `<section class="culprit">
<h3><span class="swatch" style="background:${COLORS[i] ?? "#999"}"></span>${c.rank}. <code>${esc(leaf?.fn || "(anonymous)")}</code></h3>
<p class="loc">${esc(location(leaf))}</p>
<p>grew <b>${esc(formatBytes(c.growthBytes))}</b> (${esc(percent(c.growthShare))} of all growth), in ${c.growingIntervals} of ${
        c.intervals
      } intervals; ${esc(c.reason)}</p>
<p class="small">live bytes per profile: ${esc(c.bytes.map(formatBytes).join(" → "))}</p>
<details><summary>stack (${c.frames.length} frames, allocating function first)</summary><ol>${frames}</ol>${
        c.frames.length > 20 ? `<p class="small">… ${c.frames.length - 20} more frames</p>` : ""
      }</details>
</section>`;
    })
    .join("\n");
  const candidates = r.candidates
    .map(
      (c) =>
        `<tr><td>${esc(c.host)}</td><td>${c.pid}</td><td>${c.severity.toFixed(2)}</td><td>${
          c.clarity === undefined ? "–" : c.clarity.toFixed(2)
        }</td><td>${c.vms ?? "–"}</td><td>${esc(c.outcome)}</td></tr>`,
    )
    .join("\n");
  const profiles = r.profiles
    .map(
      (p, i) =>
        `<tr><td>${i + 1}</td><td>${esc(iso(p.takenAt))}</td><td>${esc(formatBytes(p.bytes))}</td><td><code>${esc(p.id)}</code></td></tr>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:960px;padding:0 1em;color:#222}
h1{font-size:1.35em}h2{font-size:1.1em;margin-top:2em;border-bottom:1px solid #ddd}h3{font-size:1em;margin:.2em 0}
table{border-collapse:collapse;margin:.5em 0}th,td{text-align:left;padding:.2em .8em .2em 0;vertical-align:top}
table.list td,table.list th{border-bottom:1px solid #eee}code{font:12px ui-monospace,Menlo,Consolas,monospace}
.loc{color:#555;font:12px ui-monospace,Menlo,Consolas,monospace;word-break:break-all}.small{color:#666;font-size:12px}
.culprit{border-left:3px solid #eee;padding:.3em 0 .3em .8em;margin:.8em 0}.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.4em}
figure{margin:1em 0}figcaption{color:#666;font-size:12px}svg text{font:11px system-ui,sans-serif;fill:#444}
</style>
</head>
<body>
<h1>${esc(title)}</h1>
<table>
${rows}
</table>
<h2>Memory</h2>
${memory || '<p class="small">No memory series of the process was recorded while it was suspected.</p>'}
${totals}
<h2>Ranked allocation stacks</h2>
${culprits || "<p>No stack grew between the profiles.</p>"}
<h2>Hosts considered</h2>
<table class="list"><tr><th>host</th><th>pid</th><th>severity</th><th>clarity</th><th>VMs</th><th>outcome</th></tr>
${candidates}
</table>
<h2>Profiles</h2>
<table class="list"><tr><th>#</th><th>taken</th><th>live bytes</th><th>object in resin_profiles</th></tr>
${profiles}
</table>
<p class="small">Ticket <code>${esc(r.id)}</code>, case <code>${esc(r.caseId)}</code>, suspect <code>${esc(r.suspectId)}</code>. Generated by resin.</p>
</body>
</html>
`;
}

export interface PlotLine {
  name: string;
  xs: readonly number[];
  ys: readonly number[];
  color: string;
}

/** A small line plot as inline SVG: time on x, bytes on y, an optional shaded x range. */
export function svgPlot(p: { lines: PlotLine[]; shade?: [number, number]; caption: string }): string {
  const W = 640;
  const H = 210;
  const left = 70;
  const right = 10;
  const top = 10;
  const bottom = 50;
  const xsAll = p.lines.flatMap((l) => [...l.xs]);
  const ysAll = p.lines.flatMap((l) => [...l.ys]);
  if (xsAll.length === 0) return "";
  let x0 = Math.min(...xsAll);
  let x1 = Math.max(...xsAll);
  if (x1 === x0) {
    x0 -= 1;
    x1 += 1;
  }
  const y0 = Math.min(0, ...ysAll);
  let y1 = Math.max(...ysAll);
  if (y1 === y0) y1 = y0 + 1;
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * (W - left - right);
  const sy = (y: number) => top + (1 - (y - y0) / (y1 - y0)) * (H - top - bottom);
  const parts: string[] = [];
  if (p.shade !== undefined) {
    const a = Math.max(x0, p.shade[0]);
    const b = Math.min(x1, p.shade[1]);
    if (b > a)
      parts.push(
        `<rect x="${n(sx(a))}" y="${top}" width="${n(sx(b) - sx(a))}" height="${H - top - bottom}" fill="#f5b7b1" opacity="0.45"><title>suspicious interval</title></rect>`,
      );
  }
  parts.push(
    `<line x1="${left}" y1="${H - bottom}" x2="${W - right}" y2="${H - bottom}" stroke="#999"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${H - bottom}" stroke="#999"/>`,
    `<text x="${left - 4}" y="${top + 8}" text-anchor="end">${esc(formatBytes(y1))}</text>`,
    `<text x="${left - 4}" y="${H - bottom}" text-anchor="end">${esc(formatBytes(y0))}</text>`,
    `<text x="${left}" y="${H - bottom + 14}">${esc(iso(x0))}</text>`,
    `<text x="${W - right}" y="${H - bottom + 14}" text-anchor="end">${esc(iso(x1))}</text>`,
  );
  p.lines.forEach((l, i) => {
    const pts = l.xs.map((x, j) => `${n(sx(x))},${n(sy(l.ys[j] ?? 0))}`).join(" ");
    parts.push(
      `<polyline points="${pts}" fill="none" stroke="${l.color}" stroke-width="2"><title>${esc(l.name)}</title></polyline>`,
    );
    for (let j = 0; j < l.xs.length; j++)
      parts.push(`<circle cx="${n(sx(l.xs[j]!))}" cy="${n(sy(l.ys[j] ?? 0))}" r="2.5" fill="${l.color}"/>`);
    const lx = left + 8 + (i % 3) * 190;
    const ly = H - 18 + Math.floor(i / 3) * 13;
    parts.push(
      `<rect x="${lx}" y="${ly - 8}" width="10" height="3" fill="${l.color}"/>`,
      `<text x="${lx + 14}" y="${ly - 4}">${esc(truncate(l.name, 28))}</text>`,
    );
  });
  return `<figure><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${esc(
    p.caption,
  )}">${parts.join("")}</svg><figcaption>${esc(p.caption)}</figcaption></figure>`;
}

// --- Formatting ---------------------------------------------------------------------------------

export function formatBytes(v: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  let x = v;
  while (Math.abs(x) >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(x)} B` : `${x.toFixed(1)} ${units[u]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(0)} min`;
  if (ms < 2 * 86_400_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} d`;
}

function location(f: { file: string; line: number } | undefined): string {
  if (f === undefined) return "(unknown)";
  if (f.file === "") return "(unknown file)";
  return f.line > 0 ? `${f.file}:${f.line}` : f.file;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

function percent(x: number): string {
  return `${Math.round(x * 100)}%`;
}

function n(x: number): string {
  return (Math.round(x * 10) / 10).toString();
}

function truncate(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Text in Markdown prose: characters that would start formatting are escaped. */
function mdText(s: string): string {
  return s.replace(/([\\`*_[\]<>|])/g, "\\$1");
}

function mdCell(s: string): string {
  return mdText(s).replace(/\n/g, " ");
}

/** Inside a code span: a backtick cannot be escaped, so it is replaced. */
function mdCode(s: string): string {
  return s.replace(/`/g, "'");
}
