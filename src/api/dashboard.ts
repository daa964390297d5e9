/**
 * The dashboard: one self-contained page (no build step) that reads the JSON
 * API and follows /api/events. Datastores with capacity bars, images by state,
 * the image table, a live feed of facts, and an image's history timeline.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>imgr</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { --bg:#0f1720; --panel:#17212b; --text:#e6edf3; --muted:#8b98a5; --ok:#3fb950; --warn:#d29922; --err:#f85149; --info:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; align-items:center; gap:12px; padding:12px 20px; border-bottom:1px solid #263340; }
  header h1 { font-size:18px; margin:0; }
  #live { font-size:12px; color:var(--muted); }
  #live.on::before { content:"● "; color:var(--ok); }
  main { display:grid; grid-template-columns: 2fr 1fr; gap:16px; padding:16px 20px; }
  section { background:var(--panel); border-radius:8px; padding:12px 16px; }
  h2 { font-size:14px; margin:0 0 8px; color:var(--muted); text-transform:uppercase; letter-spacing:.05em; }
  .cards { display:flex; flex-wrap:wrap; gap:12px; }
  .card { min-width:220px; padding:10px; border:1px solid #263340; border-radius:6px; }
  .bar { height:8px; background:#263340; border-radius:4px; overflow:hidden; margin:6px 0; }
  .bar > div { height:100%; background:var(--info); }
  .chips span { display:inline-block; margin:2px 6px 2px 0; padding:2px 8px; border-radius:10px; background:#263340; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:left; padding:4px 6px; border-bottom:1px solid #263340; }
  tbody tr { cursor:pointer; }
  tbody tr:hover { background:#1d2a36; }
  .state { font-weight:600; }
  .state[data-state=READY] { color:var(--ok); }
  .state[data-state^=LOCKED], .state[data-state=DELETE] { color:var(--warn); }
  .state[data-state=ERROR] { color:var(--err); }
  .state[data-state^=USED], .state[data-state=CLONE] { color:var(--info); }
  #feed { list-style:none; margin:0; padding:0; max-height:360px; overflow:auto; font-size:12px; }
  #feed li { padding:3px 0; border-bottom:1px solid #263340; }
  #timeline { font-size:12px; }
  #timeline li { margin:2px 0; }
  .muted { color:var(--muted); }
  .err { color:var(--err); }
</style>
</head>
<body>
<header><h1>imgr</h1><span id="live">connecting…</span></header>
<main>
  <div>
    <section><h2>Datastores</h2><div id="datastores" class="cards"></div></section>
    <section style="margin-top:16px"><h2>Images by state</h2><div id="states" class="chips"></div></section>
    <section style="margin-top:16px"><h2>Images</h2>
      <table><thead><tr><th>ID</th><th>Name</th><th>Owner</th><th>Datastore</th><th>Type</th><th>Size</th><th>State</th><th>VMs</th></tr></thead>
      <tbody id="images"></tbody></table>
    </section>
    <section id="image" style="margin-top:16px" hidden><h2 id="image-title">Image</h2><ol id="timeline"></ol></section>
  </div>
  <div><section><h2>Live feed</h2><ul id="feed"></ul></section></div>
</main>
<script>
const images = new Map(), datastores = new Map();
const running = (d) => Object.values(d.operationsByAction || {}).reduce((a, n) => a + n, 0);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
function renderDatastores() {
  document.getElementById('datastores').innerHTML = [...datastores.values()].sort((a,b)=>a.id-b.id).map((d) => {
    const pct = d.totalMb > 0 ? Math.round(100 * d.usedMb / d.totalMb) : 0;
    return '<div class="card" data-datastore="' + d.id + '"><b>' + esc(d.name) + '</b> <span class="muted">#' + d.id + ' ' + esc(d.type) + ' ' + esc(d.dsMad) + '</span>'
      + '<div class="bar"><div style="width:' + pct + '%"></div></div>'
      + '<span class="muted">' + d.freeMb + ' MB free of ' + d.totalMb + ' MB · ' + Object.values(d.imagesByState || {}).reduce((a, n) => a + n, 0) + ' images'
      + (running(d) ? ' · ' + running(d) + ' operations running' : '') + '</span>'
      + '<div class="chips">' + Object.entries(d.imagesByState || {}).map(([s, n]) => '<span class="state" data-state="' + s + '">' + s + ' ' + n + '</span>').join('') + '</div>'
      + (d.monitorError ? '<div class="err">' + esc(d.monitorError) + '</div>' : '') + '</div>';
  }).join('') || '<span class="muted">no datastores</span>';
}
function renderImages() {
  const rows = [...images.values()].sort((a,b)=>a.id-b.id);
  document.getElementById('images').innerHTML = rows.map((i) =>
    '<tr data-id="' + i.id + '"><td>' + i.id + '</td><td>' + esc(i.name) + '</td><td>' + esc(i.uname) + '</td><td>' + esc(i.datastore.name)
    + '</td><td>' + i.type + '</td><td>' + i.size + ' MB</td><td class="state" data-state="' + i.state + '">' + i.state + '</td><td>' + i.vms.length + '</td></tr>').join('');
  const counts = {};
  for (const i of rows) counts[i.state] = (counts[i.state] || 0) + 1;
  document.getElementById('states').innerHTML = Object.entries(counts).map(([s, n]) => '<span class="state" data-state="' + s + '">' + s + ' ' + n + '</span>').join('') || '<span class="muted">no images</span>';
}
async function showImage(id) {
  const [view, history] = await Promise.all([fetch('/api/images/' + id).then((r) => r.json()), fetch('/api/images/' + id + '/history').then((r) => r.json())]);
  document.getElementById('image').hidden = false;
  document.getElementById('image-title').textContent = 'Image ' + id + ' · ' + (view.name || '') + ' · ' + (view.state || 'gone');
  document.getElementById('timeline').innerHTML = history.map((e) => '<li><span class="muted">' + new Date(e.at).toISOString() + '</span> '
    + (e.kind === 'rejected' ? '<span class="err">refused ' + esc(e.what) + '</span>' : esc(e.what)) + (e.state ? ' → <b>' + e.state + '</b>' : '')
    + ' <span class="muted">by ' + esc(e.actor ? e.actor.name + '/' + e.actor.service : '-') + ' ' + esc(e.why) + '</span></li>').join('');
}
document.getElementById('images').addEventListener('click', (e) => {
  const tr = e.target.closest('tr');
  if (tr) showImage(tr.dataset.id);
});
async function load() {
  const [ds, imgs] = await Promise.all([fetch('/api/datastores').then((r) => r.json()), fetch('/api/images?limit=1000').then((r) => r.json())]);
  for (const d of ds) datastores.set(d.id, d);
  for (const i of imgs.items) images.set(i.id, i);
  renderDatastores(); renderImages();
}
const events = new EventSource('/api/events');
events.onopen = () => { const l = document.getElementById('live'); l.textContent = 'live'; l.className = 'on'; };
events.onerror = () => { const l = document.getElementById('live'); l.textContent = 'reconnecting…'; l.className = ''; };
events.addEventListener('image', (e) => { const v = JSON.parse(e.data); if (v.removed) images.delete(v.id); else images.set(v.id, v); renderImages(); });
events.addEventListener('datastore', (e) => { const v = JSON.parse(e.data); datastores.set(v.id, v); renderDatastores(); });
// The views were rebuilt (a new generation): read everything again.
events.addEventListener('reset', () => { images.clear(); datastores.clear(); load(); });
events.addEventListener('fact', (e) => {
  const f = JSON.parse(e.data);
  const li = document.createElement('li');
  li.textContent = new Date(f.at).toLocaleTimeString() + ' ' + f.subject.replace('imgr.evt.', '') + ' ' + f.facts.map((x) => x.type + ' → ' + x.state).join(', ') + ' (' + f.actor + ')';
  const feed = document.getElementById('feed');
  feed.prepend(li);
  while (feed.children.length > 50) feed.lastChild.remove();
});
load();
</script>
</body>
</html>
`;
