// The gateway's live monitor page: reads /ws/monitor, acts through the REST API.
// Plain JavaScript, no dependencies. Everything the gateway sends is shown with
// textContent, never as markup: caller numbers and transcripts come from outside.
'use strict';

(() => {
  const TOKEN_KEY = 'voiceai-gateway.token';
  const ENDED_KEPT = 20;
  const LINES_KEPT = 200;
  const RETRY_MAX_MS = 10000;

  /** Active calls by call id: the last snapshot plus what the page derives. */
  const calls = new Map();
  /** Ended calls, newest first. */
  let ended = [];
  /** DTMF and transcript lines by call id (kept after the call ends). */
  const lines = new Map();
  let selected = null;
  let socket = null;
  let retries = 0;
  let retryTimer = null;
  let lastStats = null;

  const $ = (id) => document.getElementById(id);
  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  function authHeaders(extra) {
    const headers = Object.assign({}, extra);
    if (token()) headers.Authorization = 'Bearer ' + token();
    return headers;
  }

  function setState(id, state, text) {
    const item = $(id);
    item.dataset.state = state;
    item.textContent = text;
  }

  function seconds(total) {
    total = Math.max(0, Math.floor(total));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, '0');
    return h > 0 ? h + ':' + String(m).padStart(2, '0') + ':' + s : m + ':' + s;
  }

  function clock(iso) {
    const date = iso ? new Date(iso) : new Date();
    return isNaN(date) ? '' : date.toLocaleTimeString();
  }

  function cell(row, text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function button(text, className, onClick) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = text;
    b.className = className;
    b.addEventListener('click', (event) => {
      event.stopPropagation();
      onClick();
    });
    return b;
  }

  // ---- Authorisation: ask for the token only when the API says 401. ----

  function showLogin(message) {
    closeSocket();
    $('monitor').hidden = true;
    $('sign-out').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    setState('ws-state', 'down', 'Monitor: needs the API token');
    $('token-input').focus();
  }

  async function start() {
    clearTimeout(retryTimer);
    setState('ws-state', 'connecting', 'Monitor: connecting…');
    let reply;
    try {
      reply = await fetch('/api/asterisk/status', { headers: authHeaders(), cache: 'no-store' });
    } catch (error) {
      setState('ws-state', 'down', 'Monitor: gateway unreachable');
      return retryLater();
    }
    if (reply.status === 401) {
      return showLogin(token() ? 'The gateway refused this token.' : '');
    }
    $('login').hidden = true;
    $('monitor').hidden = false;
    $('sign-out').hidden = !token();
    connect();
  }

  function retryLater() {
    const delay = Math.min(RETRY_MAX_MS, 500 * 2 ** retries);
    retries += 1;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(start, delay);
  }

  function closeSocket() {
    if (socket) {
      socket.onclose = null;
      socket.close();
      socket = null;
    }
  }

  function connect() {
    closeSocket();
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = token() ? '?token=' + encodeURIComponent(token()) : '';
    const ws = new WebSocket(scheme + '//' + location.host + '/ws/monitor' + query);
    socket = ws;
    ws.onopen = () => {
      retries = 0;
      setState('ws-state', 'up', 'Monitor: connected');
    };
    ws.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      handle(event);
    };
    ws.onclose = (close) => {
      if (socket !== ws) return;
      socket = null;
      const why = close.reason ? ' (' + close.reason + ')' : '';
      setState('ws-state', 'down', 'Monitor: disconnected' + why + ', retrying');
      setState('ari-state', 'unknown', 'Asterisk: unknown');
      retryLater();
    };
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  // ---- Events from /ws/monitor. ----

  function handle(event) {
    switch (event.type) {
      case 'connected': {
        calls.clear();
        $('active-calls').tBodies[0].replaceChildren();
        (event.activeCalls || []).forEach((call) => upsert(call));
        if (event.endedCalls) ended = event.endedCalls.slice().reverse().slice(0, ENDED_KEPT);
        if (event.asterisk) showAsterisk(event.asterisk);
        if (selected) send({ type: 'join_call', callId: selected });
        renderEnded();
        break;
      }
      case 'call_started':
        upsert({
          callId: event.callId,
          channelId: event.channelId,
          callerNumber: event.callerNumber,
          calledNumber: event.calledNumber,
          direction: event.direction,
          media: event.media,
          server: event.server,
          status: event.status || (event.direction === 'outbound' ? 'ringing' : 'answered'),
          backendState: 'connecting',
          duration: 0,
        });
        break;
      case 'call_answered':
        update(event.callId, (call) => {
          if (call.status === 'ringing') call.status = 'answered';
        });
        break;
      case 'backend_state':
        update(event.callId, (call) => {
          call.backendState = event.state;
        });
        break;
      case 'media_stats':
        update(event.callId, (call) => {
          const now = performance.now();
          if (call.sample) {
            const elapsed = (now - call.sample.at) / 1000;
            if (elapsed > 0.2) {
              call.fpsIn = (event.framesIn - call.sample.framesIn) / elapsed;
              call.fpsOut = (event.framesOut - call.sample.framesOut) / elapsed;
            }
          }
          call.sample = { at: now, framesIn: event.framesIn, framesOut: event.framesOut };
          call.framesIn = event.framesIn;
          call.framesOut = event.framesOut;
          if (event.status) call.status = event.status;
          if (event.backendState) call.backendState = event.backendState;
        });
        break;
      case 'dtmf':
        addLine(event.callId, 'dtmf', 'DTMF ' + event.digit, event.timestamp);
        break;
      case 'transcript':
        addLine(event.callId, 'transcript', describe(event.data), event.timestamp);
        break;
      case 'call_ended':
        finish(event);
        break;
      case 'stats':
        lastStats = event;
        if (event.asterisk) showAsterisk(event.asterisk);
        $('gateway-stats').textContent =
          event.callsPerMinute + ' calls/min · ' + event.callsTotal + ' since start';
        showBackends();
        break;
      case 'error':
        notice('The gateway said: ' + event.message);
        break;
      default:
        break; // pong, ack, and types a newer gateway may add
    }
  }

  function describe(data) {
    if (data && typeof data === 'object') {
      const text = data.text ?? data.transcript ?? data.message;
      if (typeof text === 'string') {
        const who = data.speaker ?? data.role ?? data.source;
        return (typeof who === 'string' ? who + ': ' : '') + text;
      }
    }
    const json = JSON.stringify(data);
    return json.length > 500 ? json.slice(0, 500) + '…' : json;
  }

  function showAsterisk(ari) {
    const servers = ari.servers || [];
    if (servers.length > 1) {
      const up = servers.filter((server) => server.connected).length;
      const each = servers.map((server) => server.name + ' ' + (server.connected ? 'up' : 'DOWN'));
      const state = up === servers.length ? 'up' : up > 0 ? 'warn' : 'down';
      const taking = ari.acceptingCalls === false ? ', not taking calls' : '';
      setState('ari-state', state === 'up' && taking ? 'warn' : state,
        'Asterisk: ' + up + '/' + servers.length + ' connected (' + each.join(', ') + ')' + taking);
      $('ari-state').title = servers.map((server) => server.name + ': ' + server.host + ':' +
        server.ariPort + ', app ' + server.appName).join('\n');
      return;
    }
    if (ari.connected) {
      const where = ari.host + ':' + ari.ariPort + ', app ' + ari.appName;
      const version = ari.asteriskVersion ? ', Asterisk ' + ari.asteriskVersion : '';
      const taking = ari.acceptingCalls === false ? ', not taking calls' : '';
      setState('ari-state', ari.acceptingCalls === false ? 'warn' : 'up',
        'Asterisk: connected (' + where + version + ')' + taking);
    } else {
      setState('ari-state', 'down', 'Asterisk: disconnected (' + ari.host + ':' + ari.ariPort + ')');
    }
  }

  function showBackends() {
    const counts = {};
    calls.forEach((call) => {
      counts[call.backendState] = (counts[call.backendState] || 0) + 1;
    });
    const parts = Object.keys(counts).sort().map((state) => counts[state] + ' ' + state.replace('_', ' '));
    const failures = lastStats ? lastStats.backendFailures : 0;
    const text = 'Backends: ' + (parts.length ? parts.join(', ') : 'no calls') +
      ' · ' + failures + ' failures since start';
    const troubled = counts.reconnecting || counts.failed_over;
    setState('backend-state', troubled ? 'warn' : parts.length ? 'up' : 'unknown', text);
  }

  // ---- Active calls. ----

  function upsert(snapshot) {
    const known = calls.get(snapshot.callId);
    const call = Object.assign(known || {}, snapshot);
    if (!known) {
      // Durations tick from when this page learnt them, not from the server's clock.
      call.startedAt = Date.now() - (snapshot.duration || 0) * 1000;
      call.row = createRow(call);
      calls.set(call.callId, call);
      $('active-calls').tBodies[0].appendChild(call.row);
    }
    renderRow(call);
    renderCount();
  }

  function update(callId, change) {
    const call = calls.get(callId);
    if (!call) return;
    change(call);
    renderRow(call);
    if (callId === selected) renderDetail();
  }

  function createRow(call) {
    const row = document.createElement('tr');
    row.dataset.callId = call.callId;
    ['caller', 'dialled', 'duration', 'status', 'backend', 'media', 'fps-in', 'fps-out', 'server'].forEach(
      (name) => cell(row, '', name));
    const actions = cell(row, '', 'actions');
    actions.appendChild(button('Hang up', 'disconnect', () => disconnect(call.callId)));
    actions.appendChild(button('Transfer…', 'transfer', () => {
      select(call.callId);
      $('transfer-endpoint').focus();
    }));
    row.addEventListener('click', () => select(call.callId));
    return row;
  }

  function renderRow(call) {
    const cells = call.row.cells;
    cells[0].textContent = call.callerNumber || '(unknown)';
    cells[1].textContent = call.calledNumber || '';
    cells[2].textContent = seconds((Date.now() - call.startedAt) / 1000);
    cells[3].textContent = (call.status || '').replace('_', ' ');
    cells[4].textContent = (call.backendState || '').replace('_', ' ');
    cells[4].dataset.state = call.backendState || '';
    cells[5].textContent = call.media || '';
    cells[6].textContent = call.fpsIn === undefined ? '–' : Math.round(call.fpsIn);
    cells[7].textContent = call.fpsOut === undefined ? '–' : Math.round(call.fpsOut);
    cells[6].title = call.framesIn === undefined ? '' : call.framesIn + ' frames in';
    cells[7].title = call.framesOut === undefined ? '' : call.framesOut + ' frames out';
    cells[8].textContent = call.server || '';
    call.row.classList.toggle('selected', call.callId === selected);
    showBackends();
  }

  function renderCount() {
    $('active-count').textContent = calls.size;
    $('no-calls').hidden = calls.size > 0;
  }

  function finish(event) {
    const call = calls.get(event.callId);
    if (call) {
      call.row.remove();
      calls.delete(event.callId);
    }
    ended.unshift({
      callId: event.callId,
      callerNumber: call ? call.callerNumber : '',
      calledNumber: call ? call.calledNumber : '',
      duration: event.duration,
      endTime: event.timestamp,
      endReason: event.reason,
    });
    ended = ended.slice(0, ENDED_KEPT);
    renderCount();
    renderEnded();
    showBackends();
    if (event.callId === selected) renderDetail();
  }

  function renderEnded() {
    const body = $('ended-calls').tBodies[0];
    body.replaceChildren(...ended.map((call) => {
      const row = document.createElement('tr');
      row.dataset.callId = call.callId;
      cell(row, call.callerNumber || '(unknown)', 'caller');
      cell(row, call.calledNumber || '', 'dialled');
      cell(row, seconds(call.duration || 0), 'duration');
      cell(row, clock(call.endTime), 'ended');
      cell(row, call.endReason || '', 'reason');
      row.addEventListener('click', () => select(call.callId));
      return row;
    }));
    $('no-ended').hidden = ended.length > 0;
  }

  // ---- The selected call: its DTMF and transcript (join_call). ----

  function select(callId) {
    if (selected && selected !== callId) send({ type: 'leave_call', callId: selected });
    selected = callId;
    send({ type: 'join_call', callId });
    calls.forEach((call) => call.row.classList.toggle('selected', call.callId === callId));
    $('detail').hidden = false;
    renderDetail();
  }

  function addLine(callId, kind, text, at) {
    if (!lines.has(callId)) lines.set(callId, []);
    const list = lines.get(callId);
    list.push({ kind, text, at });
    if (list.length > LINES_KEPT) list.shift();
    if (callId === selected) renderDetail();
  }

  function renderDetail() {
    const call = calls.get(selected);
    const over = ended.find((c) => c.callId === selected);
    $('detail-id').textContent = call ? (call.callerNumber || '') + ' → ' + (call.calledNumber || '')
      : over ? (over.callerNumber || '') + ' → ' + (over.calledNumber || '') : selected;
    $('detail-state').textContent = call ? '' : over ? '(ended: ' + over.endReason + ')' : '(gone)';
    $('transfer-form').hidden = !call;
    const list = lines.get(selected) || [];
    $('detail-lines').replaceChildren(...list.map((line) => {
      const item = document.createElement('li');
      item.className = line.kind;
      const time = document.createElement('time');
      time.textContent = clock(line.at);
      item.appendChild(time);
      item.appendChild(document.createTextNode(' ' + line.text));
      return item;
    }));
    $('no-lines').hidden = list.length > 0;
  }

  // ---- Acting on calls through the REST API. ----

  function notice(text) {
    $('notice').textContent = text;
  }

  async function command(callId, action, body) {
    let reply;
    try {
      reply = await fetch('/api/calls/' + encodeURIComponent(callId) + '/' + action, {
        method: 'POST',
        headers: authHeaders({ 'Content-Type': 'application/json' }),
        body: JSON.stringify(body || {}),
      });
    } catch (error) {
      return notice(action + ' failed: gateway unreachable');
    }
    if (reply.status === 401) return showLogin('The gateway refused this token.');
    const answer = await reply.json().catch(() => ({}));
    notice(reply.ok ? (answer.message || action + ' requested')
      : action + ' refused: ' + (answer.message || reply.status));
  }

  function disconnect(callId) {
    const call = calls.get(callId);
    if (!call) return;
    if (!confirm('Hang up the call from ' + (call.callerNumber || 'unknown') + '?')) return;
    command(callId, 'disconnect');
  }

  // ---- Wiring. ----

  document.addEventListener('DOMContentLoaded', () => {
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
      $('token-input').value = '';
      retries = 0;
      start();
    });
    $('transfer-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const endpoint = $('transfer-endpoint').value.trim();
      if (selected && endpoint) command(selected, 'transfer', { endpoint });
    });
    $('sign-out').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin('');
    });
    setInterval(() => calls.forEach((call) => {
      call.row.cells[2].textContent = seconds((Date.now() - call.startedAt) / 1000);
    }), 1000);
    start();
  });
})();
