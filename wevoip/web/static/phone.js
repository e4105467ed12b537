// The phone console: JsSIP registers over the WebSocket the page names and makes and takes
// one call at a time. The SIP password is typed here and kept only in this page's memory.
(function () {
  'use strict';
  const root = document.getElementById('phone');
  if (!root || typeof JsSIP === 'undefined') return;
  const $ = (id) => document.getElementById(id);
  const state = (text) => { $('call-state').textContent = text; };
  const buttons = { call: $('call'), answer: $('answer'), hangup: $('hangup'), hold: $('hold'), mute: $('mute') };
  let ua = null;
  let session = null;
  let statsTimer = null;

  function show(inCall, ringing) {
    buttons.call.disabled = inCall || !(ua && ua.isRegistered());
    buttons.answer.hidden = !ringing;
    buttons.hangup.disabled = !inCall;
    buttons.hold.disabled = !inCall || ringing;
    buttons.mute.disabled = !inCall || ringing;
  }

  function gatewayUfrag() {
    const pc = session && session.connection;
    const sdp = pc && pc.remoteDescription ? pc.remoteDescription.sdp : '';
    const match = /a=ice-ufrag:(\S+)/.exec(sdp);
    return match ? match[1] : null;
  }

  async function pollMedia() {
    const ufrag = gatewayUfrag();
    if (!ufrag) return;
    try {
      const response = await fetch('/phone/media?ufrag=' + encodeURIComponent(ufrag),
        { credentials: 'same-origin', cache: 'no-store' });
      if (!response.ok) return;
      const media = await response.json();
      $('media-ice').textContent = media.ice.selected ? 'selected ' + media.ice.selected.join(':') : 'checking';
      $('media-dtls').textContent = media.dtls.state + (media.dtls.role ? ' (' + media.dtls.role + ')' : '');
      $('media-srtp').textContent = media.srtp.profile || 'no keys';
      $('media-sent').textContent = media.srtp.sent ? media.srtp.sent.packets : 0;
      $('media-received').textContent = media.srtp.received ? media.srtp.received.packets : 0;
      root.dataset.oneWay = media.one_way ? 'yes' : 'no';
    } catch (error) {
      // The call may have ended between two polls; the next call starts polling again.
    }
  }

  function track(newSession) {
    session = newSession;
    $('peer').textContent = session.remote_identity.uri.toString();
    session.on('peerconnection', (event) => attachAudio(event.peerconnection));
    if (session.connection) attachAudio(session.connection);
    session.on('progress', () => state(session.direction === 'incoming' ? 'incoming call' : 'ringing out'));
    session.on('confirmed', () => {
      state('in call');
      show(true, false);
      statsTimer = setInterval(pollMedia, 1000);
      pollMedia();
    });
    session.on('hold', () => { state('on hold'); buttons.hold.textContent = 'Resume'; });
    session.on('unhold', () => { state('in call'); buttons.hold.textContent = 'Hold'; });
    session.on('muted', () => { buttons.mute.textContent = 'Unmute'; });
    session.on('unmuted', () => { buttons.mute.textContent = 'Mute'; });
    const ended = (event) => {
      state('ended: ' + (event.cause || 'hung up'));
      clearInterval(statsTimer);
      session = null;
      buttons.hold.textContent = 'Hold';
      buttons.mute.textContent = 'Mute';
      show(false, false);
    };
    session.on('ended', ended);
    session.on('failed', ended);
  }

  function attachAudio(pc) {
    pc.addEventListener('track', (event) => { $('remote-audio').srcObject = event.streams[0]; });
  }

  $('phone-login').addEventListener('submit', (event) => {
    event.preventDefault();
    if (ua) ua.stop();
    const url = root.dataset.wsScheme + '://' + location.hostname + ':' + root.dataset.wsPort;
    ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(url)], uri: root.dataset.uri, password: $('sip-password').value,
      display_name: root.dataset.name, register: true, session_timers: false,
    });
    $('registration').textContent = 'connecting';
    ua.on('registered', () => { $('registration').textContent = 'registered'; show(!!session, false); });
    ua.on('unregistered', () => { $('registration').textContent = 'not registered'; show(!!session, false); });
    ua.on('registrationFailed', (e) => { $('registration').textContent = 'failed: ' + e.cause; });
    ua.on('newRTCSession', (e) => {
      if (session) { e.session.terminate({ status_code: 486 }); return; }
      track(e.session);
      if (e.originator === 'remote') { state('incoming call'); show(true, true); }
    });
    ua.start();
  });

  const media = { mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } };

  buttons.call.addEventListener('click', () => {
    const number = $('number').value.trim();
    if (!number || !ua) return;
    state('calling');
    show(true, false);
    ua.call(number, media);
  });
  buttons.answer.addEventListener('click', () => { if (session) { session.answer(media); show(true, false); } });
  buttons.hangup.addEventListener('click', () => { if (session) session.terminate(); });
  buttons.hold.addEventListener('click', () => {
    if (!session) return;
    if (session.isOnHold().local) session.unhold(); else session.hold();
  });
  buttons.mute.addEventListener('click', () => {
    if (!session) return;
    if (session.isMuted().audio) session.unmute({ audio: true }); else session.mute({ audio: true });
  });
  for (const key of root.querySelectorAll('.key')) {
    key.addEventListener('click', () => {
      if (session && session.isEstablished()) session.sendDTMF(key.dataset.key);
      else $('number').value += key.dataset.key;
    });
  }
}());
