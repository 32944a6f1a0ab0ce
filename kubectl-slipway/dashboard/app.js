// Slipway dashboard: renders the Remotes and PipelineRuns that the server
// relays from its watches (Server-Sent Events on api/events). Read-only: the
// page only reads. Routes: #/ (overview), #/NS/REMOTE, #/NS/REMOTE/RUN.
'use strict';

const KINDS = ['pipelineruns', 'remotes', 'gitkube-remotes'];
const state = { namespace: null, kinds: {}, connected: false };
for (const k of KINDS) state.kinds[k] = { status: { state: 'listing', message: '' }, items: new Map() };

// --- data ---------------------------------------------------------------

const keyOf = (o) => `${o.metadata.namespace || ''}/${o.metadata.name}`;

function sync(d) {
	const k = state.kinds[d.kind];
	if (!k) return;
	k.status = d.status;
	k.items = new Map(d.items.map((o) => [keyOf(o), o]));
}

function condition(o, type) {
	return ((o.status && o.status.conditions) || []).find((c) => c.type === type);
}

// Succeeded, Failed, Running or Queued, from the Succeeded condition.
function result(run) {
	const c = condition(run, 'Succeeded');
	if (!c) return 'Queued';
	if (c.status === 'True') return 'Succeeded';
	if (c.status === 'False') return 'Failed';
	return c.reason === 'Queued' ? 'Queued' : 'Running';
}

const time = (s) => (s ? Date.parse(s) : NaN);

function runsOf(ns, remote) {
	const out = [];
	for (const r of state.kinds.pipelineruns.items.values())
		if (r.metadata.namespace === ns && r.spec && r.spec.remote === remote) out.push(r);
	return out.sort((a, b) => time(b.metadata.creationTimestamp) - time(a.metadata.creationTimestamp));
}

function remotes() {
	const out = [];
	for (const kind of ['remotes', 'gitkube-remotes'])
		for (const r of state.kinds[kind].items.values()) out.push({ kind, obj: r });
	return out.sort((a, b) => keyOf(a.obj).localeCompare(keyOf(b.obj)));
}

// --- formatting ---------------------------------------------------------

function human(ms) {
	if (!(ms >= 0)) return '';
	const s = Math.round(ms / 1000);
	if (s < 60) return `${s}s`;
	if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? (s % 60) + 's' : ''}`;
	if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
	return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

const age = (t) => (t ? human(Date.now() - time(t)) : '');

// How long a stage took so far, in ms (0 when it never started).
function stageMs(st) {
	if (!st.startTime) return 0;
	const start = time(st.startTime);
	const end = st.completionTime ? time(st.completionTime) : st.phase === 'Running' ? Date.now() : start;
	return end - start;
}

const short = (sha) => (sha || '').slice(0, 12);

// el('a', {href: '#'}, 'text', child...): a DOM element; text is never parsed as HTML.
function el(tag, attrs, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === undefined || v === null || v === false) continue;
		if (k === 'class') e.className = v;
		else if (k === 'dataset') Object.assign(e.dataset, v);
		else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
		else e.setAttribute(k, v);
	}
	for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c);
	return e;
}

const badge = (text) => el('span', { class: `badge ${text}` }, text);
const link = (parts) => '#/' + parts.map(encodeURIComponent).join('/');

function copyButton(text) {
	return el('button', {
		type: 'button',
		'aria-label': 'copy the clone URL',
		onclick: (ev) => {
			const b = ev.currentTarget;
			const done = () => { b.textContent = 'copied'; setTimeout(() => (b.textContent = 'copy'), 1500); };
			if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, () => (b.textContent = 'select and copy'));
			else b.textContent = 'select and copy';
		},
	}, 'copy');
}

// --- views --------------------------------------------------------------

function remoteCard({ kind, obj }) {
	const ns = obj.metadata.namespace, name = obj.metadata.name, st = obj.status || {};
	const ready = condition(obj, 'Ready');
	const last = runsOf(ns, name)[0];
	let lastRun;
	if (last) {
		lastRun = [el('a', { href: link([ns, name, last.metadata.name]) }, badge(result(last))), ' ',
			el('code', {}, short(last.spec.after)), ` ${age(last.metadata.creationTimestamp)} ago`];
	} else if (st.lastRun) {
		const r = st.lastRun.succeeded === 'True' ? 'Succeeded' : 'Failed';
		lastRun = [badge(r), ' ', el('code', {}, short(st.lastRun.commit)), ` ${age(st.lastRun.completionTime)} ago`];
	} else {
		lastRun = el('span', { class: 'muted' }, 'none yet');
	}
	return el('article', { class: 'card remote', dataset: { name: `${ns}/${name}`, kind } },
		el('h3', {}, el('a', { href: link([ns, name]) }, name),
			el('span', { class: 'kind' }, `${ns} · ${kind === 'remotes' ? 'remotes.slipway.dev' : 'remotes.gitkube.sh'}`)),
		st.remoteUrl
			? el('div', { class: 'urlrow' }, el('code', { class: 'url', tabindex: '0' }, st.remoteUrl), copyButton(st.remoteUrl))
			: el('div', { class: 'urlrow muted' }, 'no URL yet (gitd runs without --external-url?)'),
		el('dl', { class: 'facts' },
			el('dt', {}, 'Ready'),
			el('dd', { class: 'ready' }, ready ? [badge(ready.status), ' ', ready.reason || '', ready.message ? `: ${ready.message}` : ''] : el('span', { class: 'muted' }, 'unknown')),
			el('dt', {}, 'Last run'), el('dd', { class: 'lastrun' }, lastRun)));
}

function runMs(run) {
	const st = run.status || {};
	const start = time(st.startTime || run.metadata.creationTimestamp);
	return (st.completionTime ? time(st.completionTime) : Date.now()) - start;
}

// The stages drawn as bars: all of status.stages but the "build" summary
// when the run has a stage per container ("build:DEPLOYMENT/CONTAINER").
function barStages(stages) {
	const perContainer = stages.some((s) => (s.name || '').startsWith('build:'));
	return perContainer ? stages.filter((s) => s.name !== 'build') : stages;
}

// One bar per stage, as wide as the stage took (with a floor, so that short
// stages stay visible); the row is as wide as the run took relative to
// SCALE ms, the longest run shown with it.
function bars(run, scale) {
	const stages = barStages((run.status && run.status.stages) || []);
	const total = stages.reduce((t, s) => t + Math.max(stageMs(s), 0), 0) || 1;
	const row = el('div', { class: 'bars', role: 'img', 'aria-label': stages.map((s) => `${s.name} ${s.phase} ${human(stageMs(s))}`).join(', ') },
		stages.map((s) => {
			const ms = stageMs(s);
			const b = el('span', { class: `bar ${s.phase}`, title: `${s.name}: ${s.phase}, ${human(ms)}` }, s.name);
			// in percent of the run, so the grow factors add up to at least 1
			b.style.flexGrow = String((100 * Math.max(ms, total * 0.1)) / total); // CSSOM: allowed by the CSP
			return b;
		}));
	if (scale) row.style.width = `${Math.max(25, Math.min(100, (100 * runMs(run)) / scale))}%`;
	return row;
}

function runRow(run, scale) {
	const ns = run.metadata.namespace, r = result(run);
	return el('div', { class: 'run', dataset: { name: run.metadata.name, result: r } },
		el('div', { class: 'label' }, badge(r),
			el('a', { href: link([ns, run.spec.remote, run.metadata.name]) }, run.metadata.name),
			el('span', { class: 'muted' }, `${human(runMs(run))} · ${age(run.metadata.creationTimestamp)} ago`)),
		bars(run, scale));
}

function timeline(ns, name, limit) {
	const runs = runsOf(ns, name).slice(0, limit);
	const scale = Math.max(1, ...runs.map(runMs));
	return el('section', { class: 'timeline', dataset: { remote: `${ns}/${name}` } },
		el('h3', {}, el('a', { href: link([ns, name]) }, `${ns}/${name}`)),
		runs.length ? runs.map((r) => runRow(r, scale)) : el('p', { class: 'muted' }, 'No runs yet.'));
}

function overview() {
	const rs = remotes();
	const names = new Set(rs.map((r) => keyOf(r.obj)));
	// runs whose Remote is gone or not visible still show
	for (const run of state.kinds.pipelineruns.items.values()) names.add(`${run.metadata.namespace}/${run.spec.remote}`);
	return [
		el('h1', {}, 'Remotes'),
		rs.length ? el('div', { class: 'cards' }, rs.map(remoteCard)) : el('p', { class: 'muted empty' }, listedOrWhy(['remotes', 'gitkube-remotes'], 'No Remotes.')),
		el('h2', {}, 'Runs'),
		[...names].sort().map((k) => { const [ns, name] = k.split('/'); return timeline(ns, name, 10); }),
	];
}

function remotePage(ns, name) {
	const r = remotes().find((x) => x.obj.metadata.namespace === ns && x.obj.metadata.name === name);
	return [el('p', {}, el('a', { href: '#/' }, '← all Remotes')),
		el('h1', {}, `${ns}/${name}`),
		r ? el('div', { class: 'cards' }, remoteCard(r)) : el('p', { class: 'muted' }, 'No such Remote (its runs, if any, are below).'),
		el('h2', {}, 'Runs'), timeline(ns, name, 50)];
}

function runPage(ns, remote, name) {
	const run = state.kinds.pipelineruns.items.get(`${ns}/${name}`);
	const back = el('p', {}, el('a', { href: link([ns, remote]) }, `← ${ns}/${remote}`));
	if (!run) return [back, el('h1', {}, name), el('p', { class: 'muted' }, listedOrWhy(['pipelineruns'], 'No such PipelineRun.'))];
	const st = run.status || {}, sp = run.spec || {}, r = result(run), c = condition(run, 'Succeeded');
	const start = time(st.startTime || run.metadata.creationTimestamp);
	const end = st.completionTime ? time(st.completionTime) : Date.now();
	return [back,
		el('h1', {}, name, ' ', badge(r)),
		r === 'Failed' && c ? el('div', { class: 'failure', role: 'alert' },
			el('div', { class: 'reason' }, c.reason || 'Failed'), c.message ? el('div', { class: 'message' }, c.message) : null) : null,
		el('dl', { class: 'facts run-facts', dataset: { name, result: r } },
			el('dt', {}, 'Remote'), el('dd', {}, el('a', { href: link([ns, remote]) }, `${ns}/${sp.remote}`)),
			el('dt', {}, 'Ref'), el('dd', {}, el('code', {}, sp.ref || '')),
			el('dt', {}, 'Commit'), el('dd', {}, el('code', {}, sp.after || '')),
			el('dt', {}, 'Pusher'), el('dd', {}, sp.pusher ? [sp.pusher.comment || '', ' ', el('code', {}, sp.pusher.fingerprint || '')] : ''),
			el('dt', {}, 'Started'), el('dd', {}, st.startTime ? `${st.startTime} (${age(st.startTime)} ago)` : ''),
			el('dt', {}, 'Duration'), el('dd', {}, human(end - start)),
			c && r !== 'Failed' ? [el('dt', {}, 'Status'), el('dd', {}, `${c.reason || ''}${c.message ? ': ' + c.message : ''}`)] : null),
		el('h2', {}, 'Stages'),
		el('div', { class: 'run' }, el('div', { class: 'label' }, 'timeline'), bars(run)),
		el('table', { class: 'stages-table' },
			el('thead', {}, el('tr', {}, el('th', {}, 'Stage'), el('th', {}, 'Phase'), el('th', { class: 'col-start' }, 'Started'), el('th', {}, 'Took'), el('th', {}, 'Message'))),
			el('tbody', {}, (st.stages || []).map((s) => el('tr', { class: 'stage' },
				el('td', {}, s.name), el('td', {}, badge(s.phase)), el('td', { class: 'col-start' }, s.startTime || ''),
				el('td', {}, s.startTime ? human(stageMs(s)) : ''), el('td', {}, s.message || ''))))),
		el('h2', {}, 'Images'),
		(st.images || []).length
			? el('table', { class: 'images' }, el('thead', {}, el('tr', {}, el('th', {}, 'Deployment/container'), el('th', {}, 'Image (by digest)'))),
				el('tbody', {}, st.images.map((i) => el('tr', {}, el('td', {}, `${i.deployment}/${i.container}`), el('td', {}, el('code', {}, i.image))))))
			: el('p', { class: 'muted' }, 'None.'),
		el('h2', {}, 'Log tail'),
		st.logTail ? el('pre', { class: 'log', tabindex: '0' }, st.logTail) : el('p', { class: 'muted' }, 'No log yet.')];
}

// Why a list is empty: still listing, or the API refused (shown above).
function listedOrWhy(kinds, empty) {
	const sts = kinds.map((k) => state.kinds[k].status.state);
	if (sts.includes('listing')) return 'Loading…';
	if (sts.some((s) => s === 'forbidden' || s === 'unauthorized' || s === 'error')) return 'Not available: see the message above.';
	return empty;
}

function alerts() {
	const out = [];
	for (const k of KINDS) {
		const s = state.kinds[k].status;
		if (s.state === 'forbidden')
			out.push(el('div', { class: 'alert forbidden', dataset: { kind: k } },
				el('strong', {}, `Forbidden: you may not list ${k === 'gitkube-remotes' ? 'remotes.gitkube.sh' : k === 'remotes' ? 'remotes.slipway.dev' : 'pipelineruns.slipway.dev'}`),
				` in ${state.namespace ? 'namespace ' + state.namespace : 'all namespaces'}. `, s.message));
		else if (s.state === 'unauthorized' || s.state === 'error')
			out.push(el('div', { class: `alert ${s.state}`, dataset: { kind: k } }, el('strong', {}, `${k}: ${s.state}. `), s.message));
	}
	return out;
}

// --- rendering ----------------------------------------------------------

let pending = false;
function render() {
	if (pending) return;
	pending = true;
	requestAnimationFrame(() => {
		pending = false;
		const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
		const main = document.getElementById('main');
		const view = parts.length >= 3 ? runPage(parts[0], parts[1], parts[2])
			: parts.length === 2 ? remotePage(parts[0], parts[1]) : overview();
		main.replaceChildren(...[view].flat(2).filter(Boolean));
		document.getElementById('alerts').replaceChildren(...alerts());
		document.getElementById('scope').textContent = state.namespace ? `namespace ${state.namespace}` : 'all namespaces';
		const live = document.getElementById('live');
		live.textContent = state.connected ? 'live' : 'reconnecting…';
		live.classList.toggle('on', state.connected);
		document.title = parts.length ? `${parts.slice(1).reverse().join(' · ') || parts[0]} · Slipway` : 'Slipway';
	});
}

function connect() {
	const es = new EventSource('api/events');
	const on = (name, fn) => es.addEventListener(name, (ev) => { fn(JSON.parse(ev.data)); render(); });
	on('snapshot', (d) => { state.namespace = d.namespace || null; d.kinds.forEach(sync); });
	on('sync', sync);
	on('upsert', (d) => state.kinds[d.kind] && state.kinds[d.kind].items.set(keyOf(d.object), d.object));
	on('delete', (d) => state.kinds[d.kind] && state.kinds[d.kind].items.delete(keyOf(d.object)));
	es.onopen = () => { state.connected = true; render(); };
	es.onerror = () => { state.connected = false; render(); }; // EventSource reconnects by itself
}

window.addEventListener('hashchange', () => { render(); document.getElementById('main').focus({ preventScroll: true }); });
setInterval(render, 5000); // ages and running stages
connect();
render();
