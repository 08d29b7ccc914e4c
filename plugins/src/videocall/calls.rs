//! The call directory: who is registered under which username and who is in a call with whom.
//!
//! Pure state, no actix, no media: every operation takes the handle it acts for and returns the
//! [`Effect`]s the plugin shell carries out (events to push, PeerConnections to close, legs to
//! link). Janus's checks run in Janus's order, with its codes and texts (reference 2.2, 8.6).

use std::collections::{BTreeMap, HashMap};

use portunus_actors::api::{HandleId, Transaction};
use portunus_actors::media::OfferSpec;
use serde_json::{json, Value};

use super::api::{
    result, Username, VcError, ALREADY_IN_CALL, ALREADY_REGISTERED, INVALID_SDP, MISSING_SDP, NO_CALL,
    NO_SUCH_USERNAME, REGISTER_FIRST, USERNAME_TAKEN, USE_ECHO_TEST,
};
use super::relay::{pair_mids, MidPair, Offered, Section};

/// A JSEP the client sent with a request, already applied by the core and summarized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sdp {
    /// An offer.
    Offer(Offered),
    /// An answer: its audio/video m-lines.
    Answer(Vec<Section>),
}

/// The JSEP of a request: absent, unparsable (with the parser's text) or summarized.
pub type Negotiation = Option<Result<Sdp, String>>;

/// What to attach to a pushed event.
#[derive(Clone, Debug)]
pub enum Attach {
    /// Nothing.
    Nothing,
    /// The core's answer to the offer the client sent on that handle.
    Answer,
    /// An offer the core builds from this spec.
    Offer(OfferSpec),
}

/// Something the shell must do once the directory lock is released (links: while it is held).
#[derive(Clone, Debug)]
pub enum Effect {
    /// Push a plugin event to a handle.
    Event {
        /// The handle.
        to: HandleId,
        /// The request's transaction (events to the requester), `None` for notifications.
        tx: Option<Transaction>,
        /// The `plugindata.data` object.
        data: Value,
        /// JSEP to attach.
        jsep: Attach,
    },
    /// Close a handle's PeerConnection.
    ClosePc(HandleId),
    /// Start relaying between two handles (pairs are oriented `a` -> `b`).
    Link {
        /// The side that offered.
        a: HandleId,
        /// The side that answered.
        b: HandleId,
        /// The streams.
        pairs: Vec<MidPair>,
    },
    /// Stop relaying between two handles.
    Unlink(HandleId, HandleId),
    /// Tell event handlers (`notify_event`), if they are on.
    Notify {
        /// The handle it is about.
        who: HandleId,
        /// The event.
        info: Value,
    },
}

/// Where a handle stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Call {
    /// No call.
    #[default]
    Idle,
    /// We called `peer`; waiting for it to accept.
    Calling {
        /// The callee.
        peer: HandleId,
        /// What our offer asked for.
        offered: Offered,
    },
    /// `peer` is calling us.
    Ringing {
        /// The caller.
        peer: HandleId,
    },
    /// In a call with `peer`.
    InCall {
        /// The other side.
        peer: HandleId,
        /// Our mid -> the peer's, for the streams relayed.
        mids: HashMap<String, String>,
        /// Our renegotiation offer, until the peer answers it.
        pending: Option<Offered>,
    },
}

impl Call {
    /// The other side, in any call state.
    pub fn peer(&self) -> Option<HandleId> {
        match self {
            Call::Idle => None,
            Call::Calling { peer, .. } | Call::Ringing { peer } | Call::InCall { peer, .. } => Some(*peer),
        }
    }
}

/// One handle's place in the directory.
#[derive(Clone, Debug, Default)]
pub struct Member {
    /// Registered username.
    pub username: Option<String>,
    /// Call state.
    pub call: Call,
}

/// What Admin `handle_info` shows of the call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallInfo {
    /// Our username.
    pub username: Option<String>,
    /// The other side's username, in any call state.
    pub peer: Option<String>,
    /// Whether a call is set up or being set up.
    pub in_call: bool,
}

/// Every handle of the plugin and the usernames they registered.
#[derive(Debug, Default)]
pub struct Directory {
    users: BTreeMap<String, HandleId>,
    members: HashMap<HandleId, Member>,
}

const EXPLICIT_HANGUP: &str = "Explicit hangup";
const DEFAULT_HANGUP: &str = "We did the hangup";
const REMOTE_HANGUP: &str = "Remote WebRTC hangup";
const USER_BUSY: &str = "User busy";

impl Directory {
    /// A handle attached.
    pub fn attach(&mut self, me: HandleId) {
        self.members.entry(me).or_default();
    }

    /// A handle went away: its call ends (the peer is told) and its username is free again.
    pub fn detach(&mut self, me: HandleId) -> Vec<Effect> {
        let effects = self.hangup_media(me);
        if let Some(m) = self.members.remove(&me) {
            if let Some(name) = m.username {
                self.users.remove(&name);
            }
        }
        effects
    }

    /// Number of handles known (tests, leak checks).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no handle is known.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// `list`.
    pub fn list(&self, me: HandleId, tx: Transaction) -> Vec<Effect> {
        let list: Vec<&String> = self.users.keys().collect();
        vec![event(me, Some(tx), result(json!({ "list": list })))]
    }

    /// `register`.
    pub fn register(&mut self, me: HandleId, tx: Transaction, username: Username) -> Vec<Effect> {
        let member = self.members.entry(me).or_default();
        if let Some(name) = &member.username {
            return error(me, tx, VcError::new(ALREADY_REGISTERED, format!("Already registered ({name})")));
        }
        let name = match username {
            Ok(n) => n,
            Err(e) => return error(me, tx, e),
        };
        if self.users.contains_key(&name) {
            return error(me, tx, VcError::new(USERNAME_TAKEN, format!("Username '{name}' already taken")));
        }
        member.username = Some(name.clone());
        self.users.insert(name.clone(), me);
        vec![
            event(me, Some(tx), result(json!({"event": "registered", "username": name}))),
            Effect::Notify { who: me, info: json!({"event": "registered", "username": name}) },
        ]
    }

    /// `call`. Janus compat (8.6): a refused call also closes the caller's PeerConnection.
    pub fn call(&mut self, me: HandleId, tx: Transaction, username: Username, jsep: Negotiation) -> Vec<Effect> {
        let refuse = |e: VcError| {
            let mut fx = error(me, tx.clone(), e);
            fx.push(Effect::ClosePc(me));
            fx
        };
        let member = self.members.entry(me).or_default();
        let Some(my_name) = member.username.clone() else {
            return refuse(VcError::new(REGISTER_FIRST, "Register a username first"));
        };
        if member.call != Call::Idle {
            return refuse(VcError::new(ALREADY_IN_CALL, "Already in a call"));
        }
        let name = match username {
            Ok(n) => n,
            Err(e) => return refuse(e),
        };
        if name == my_name {
            return refuse(VcError::new(USE_ECHO_TEST, "You can't call yourself... use the EchoTest for that"));
        }
        let Some(&peer) = self.users.get(&name) else {
            return refuse(VcError::new(NO_SUCH_USERNAME, format!("Username '{name}' doesn't exist")));
        };
        let busy = self.members.get(&peer).is_none_or(|p| p.call != Call::Idle);
        if busy {
            let info = json!({"event": "hangup", "username": my_name, "reason": USER_BUSY});
            return vec![
                event(me, Some(tx), result(info)),
                Effect::Notify { who: me, info: json!({"event": "hangup", "reason": USER_BUSY}) },
                Effect::ClosePc(me),
            ];
        }
        let offered = match jsep {
            Some(Ok(Sdp::Offer(o))) => o,
            Some(Err(e)) => return error(me, tx, VcError::new(INVALID_SDP, format!("Error parsing offer: {e}"))),
            None | Some(Ok(Sdp::Answer(_))) => return error(me, tx, VcError::new(MISSING_SDP, "Missing SDP")),
        };
        let spec = offered.spec(&HashMap::new());
        self.set_call(me, Call::Calling { peer, offered });
        self.set_call(peer, Call::Ringing { peer: me });
        vec![
            Effect::Event {
                to: peer,
                tx: None,
                data: result(json!({"event": "incomingcall", "username": my_name})),
                jsep: Attach::Offer(spec),
            },
            event(me, Some(tx), result(json!({"event": "calling", "username": name}))),
            Effect::Notify { who: me, info: json!({"event": "calling"}) },
        ]
    }

    /// `accept`: the callee answered our offer; the caller gets the core's answer to its offer.
    pub fn accept(&mut self, me: HandleId, tx: Transaction, jsep: Negotiation) -> Vec<Effect> {
        let caller = match self.members.get(&me).map(|m| &m.call) {
            Some(Call::Ringing { peer }) => *peer,
            _ => return error(me, tx, VcError::new(NO_CALL, "No incoming call to accept")),
        };
        let offered = match self.members.get(&caller).map(|m| &m.call) {
            Some(Call::Calling { peer, offered }) if *peer == me => offered.clone(),
            _ => return error(me, tx, VcError::new(NO_CALL, "No incoming call to accept")),
        };
        let answer = match jsep {
            Some(Ok(Sdp::Answer(a))) => a,
            Some(Err(e)) => return error(me, tx, VcError::new(INVALID_SDP, format!("Error parsing answer: {e}"))),
            None | Some(Ok(Sdp::Offer(_))) => return error(me, tx, VcError::new(MISSING_SDP, "Missing SDP")),
        };
        let pairs = pair_mids(&offered.tracks, &answer);
        let (caller_mids, my_mids) = mid_maps(&pairs);
        self.set_call(caller, Call::InCall { peer: me, mids: caller_mids, pending: None });
        self.set_call(me, Call::InCall { peer: caller, mids: my_mids, pending: None });
        let my_name = self.username(me);
        vec![
            Effect::Link { a: caller, b: me, pairs },
            Effect::Event {
                to: caller,
                tx: None,
                data: result(json!({"event": "accepted", "username": my_name})),
                jsep: Attach::Answer,
            },
            event(me, Some(tx), result(json!({"event": "accepted"}))),
            Effect::Notify { who: me, info: json!({"event": "accepted"}) },
        ]
    }

    /// The signalling part of `set`: an offer renegotiates (the peer gets `update` with our
    /// offer), an answer completes the peer's renegotiation (the peer gets `update` with the
    /// core's answer). Janus compat (8.6): a JSEP outside a call is ignored.
    pub fn set(&mut self, me: HandleId, tx: Transaction, jsep: Negotiation) -> Vec<Effect> {
        let mut fx = vec![event(me, Some(tx), result(json!({"event": "set"})))];
        let update = || result(json!({"event": "update"}));
        let Some(Call::InCall { peer, mids, .. }) = self.members.get(&me).map(|m| m.call.clone()) else { return fx };
        match jsep {
            Some(Ok(Sdp::Offer(offered))) => {
                let spec = offered.spec(&mids);
                if let Some(Call::InCall { pending, .. }) = self.members.get_mut(&me).map(|m| &mut m.call) {
                    *pending = Some(offered);
                }
                fx.push(Effect::Event { to: peer, tx: None, data: update(), jsep: Attach::Offer(spec) });
            }
            Some(Ok(Sdp::Answer(answer))) => {
                let offered = match self.members.get_mut(&peer).map(|m| &mut m.call) {
                    Some(Call::InCall { pending, peer: p, .. }) if *p == me => pending.take(),
                    _ => None,
                };
                if let Some(offered) = offered {
                    let pairs = pair_mids(&offered.tracks, &answer);
                    let (peer_mids, my_mids) = mid_maps(&pairs);
                    self.set_call(peer, Call::InCall { peer: me, mids: peer_mids, pending: None });
                    self.set_call(me, Call::InCall { peer, mids: my_mids, pending: None });
                    fx.insert(0, Effect::Link { a: peer, b: me, pairs });
                    fx.push(Effect::Event { to: peer, tx: None, data: update(), jsep: Attach::Answer });
                }
            }
            _ => {}
        }
        fx
    }

    /// `hangup`: both sides get `hangup` (with our username) and lose their PeerConnection.
    pub fn hangup(&mut self, me: HandleId, tx: Transaction, reason: Option<String>) -> Vec<Effect> {
        let my_name = self.username(me);
        let peer = self.end_call(me);
        let mut mine = json!({"event": "hangup", "reason": EXPLICIT_HANGUP});
        if let Some(n) = &my_name {
            mine["username"] = json!(n);
        }
        let mut fx = Vec::new();
        if let Some(peer) = peer {
            fx.push(Effect::Unlink(me, peer));
        }
        fx.push(event(me, Some(tx), result(mine)));
        fx.push(Effect::Notify { who: me, info: json!({"event": "hangup", "reason": EXPLICIT_HANGUP}) });
        fx.push(Effect::ClosePc(me));
        if let Some(peer) = peer {
            let reason = reason.unwrap_or_else(|| DEFAULT_HANGUP.to_owned());
            fx.push(Effect::Event {
                to: peer,
                tx: None,
                data: result(json!({"event": "hangup", "username": my_name, "reason": reason})),
                jsep: Attach::Nothing,
            });
            fx.push(Effect::Notify { who: peer, info: json!({"event": "hangup", "reason": "Remote hangup"}) });
            fx.push(Effect::ClosePc(peer));
        }
        fx
    }

    /// Our PeerConnection went away: the peer gets `hangup` and loses its PeerConnection.
    pub fn hangup_media(&mut self, me: HandleId) -> Vec<Effect> {
        let my_name = self.username(me);
        let Some(peer) = self.end_call(me) else { return Vec::new() };
        vec![
            Effect::Unlink(me, peer),
            Effect::Event {
                to: peer,
                tx: None,
                data: result(json!({"event": "hangup", "username": my_name, "reason": REMOTE_HANGUP})),
                jsep: Attach::Nothing,
            },
            Effect::Notify { who: peer, info: json!({"event": "hangup", "reason": REMOTE_HANGUP}) },
            Effect::ClosePc(peer),
        ]
    }

    /// Admin view of one handle.
    pub fn info(&self, me: HandleId) -> CallInfo {
        let Some(m) = self.members.get(&me) else { return CallInfo::default() };
        let peer = m.call.peer();
        CallInfo { username: m.username.clone(), peer: peer.and_then(|p| self.username(p)), in_call: peer.is_some() }
    }

    fn username(&self, h: HandleId) -> Option<String> {
        self.members.get(&h).and_then(|m| m.username.clone())
    }

    fn set_call(&mut self, h: HandleId, call: Call) {
        if let Some(m) = self.members.get_mut(&h) {
            m.call = call;
        }
    }

    /// Ends `me`'s call (both sides back to idle); returns the peer it had.
    fn end_call(&mut self, me: HandleId) -> Option<HandleId> {
        let peer = self.members.get_mut(&me).and_then(|m| std::mem::take(&mut m.call).peer())?;
        if let Some(p) = self.members.get_mut(&peer) {
            if p.call.peer() == Some(me) {
                p.call = Call::Idle;
            }
        }
        Some(peer)
    }
}

fn event(to: HandleId, tx: Option<Transaction>, data: Value) -> Effect {
    Effect::Event { to, tx, data, jsep: Attach::Nothing }
}

fn error(to: HandleId, tx: Transaction, e: VcError) -> Vec<Effect> {
    vec![event(to, Some(tx), e.to_json())]
}

/// The offerer's and the answerer's mid maps.
fn mid_maps(pairs: &[MidPair]) -> (HashMap<String, String>, HashMap<String, String>) {
    let a = pairs.iter().map(|p| (p.offerer.clone(), p.answerer.clone())).collect();
    let b = pairs.iter().map(|p| (p.answerer.clone(), p.offerer.clone())).collect();
    (a, b)
}

#[cfg(test)]
mod tests {
    use portunus_actors::media::MediaKind;

    use super::*;

    const A: HandleId = HandleId(1);
    const B: HandleId = HandleId(2);
    const C: HandleId = HandleId(3);

    fn tx() -> Transaction {
        Transaction::new("t")
    }

    fn sec(mid: &str, kind: MediaKind) -> Section {
        Section { mid: mid.into(), kind, codec: "x".into(), send_only: false, disabled: false }
    }

    fn offer() -> Negotiation {
        Some(Ok(Sdp::Offer(Offered {
            tracks: vec![sec("a", MediaKind::Audio), sec("v", MediaKind::Video)],
            data: true,
            e2ee: false,
        })))
    }

    fn answer() -> Negotiation {
        Some(Ok(Sdp::Answer(vec![sec("0", MediaKind::Audio), sec("1", MediaKind::Video)])))
    }

    /// The data of the events pushed to `to`.
    fn events_to(fx: &[Effect], to: HandleId) -> Vec<Value> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Event { to: t, data, .. } if *t == to => Some(data.clone()),
                _ => None,
            })
            .collect()
    }

    fn error_of(fx: &[Effect]) -> (u64, String) {
        let d = events_to(
            fx,
            fx.iter().find_map(|e| if let Effect::Event { to, .. } = e { Some(*to) } else { None }).unwrap(),
        );
        (d[0]["error_code"].as_u64().unwrap_or(0), d[0]["error"].as_str().unwrap_or("").to_owned())
    }

    fn closes(fx: &[Effect], h: HandleId) -> bool {
        fx.iter().any(|e| matches!(e, Effect::ClosePc(x) if *x == h))
    }

    fn registered() -> Directory {
        let mut d = Directory::default();
        for (h, n) in [(A, "alice"), (B, "bob"), (C, "carol")] {
            d.attach(h);
            d.register(h, tx(), Ok(n.into()));
        }
        d
    }

    /// alice calls bob, bob accepts.
    fn in_call() -> Directory {
        let mut d = registered();
        d.call(A, tx(), Ok("bob".into()), offer());
        d.accept(B, tx(), answer());
        d
    }

    #[test]
    fn register_and_list() {
        let mut d = registered();
        let fx = d.list(A, tx());
        assert_eq!(
            events_to(&fx, A),
            vec![json!({"videocall": "event", "result": {"list": ["alice", "bob", "carol"]}})]
        );
        assert_eq!(error_of(&d.register(A, tx(), Ok("x".into()))), (477, "Already registered (alice)".into()));
        d.attach(HandleId(9));
        assert_eq!(
            error_of(&d.register(HandleId(9), tx(), Ok("bob".into()))),
            (476, "Username 'bob' already taken".into())
        );
        let e = VcError::new(475, "Missing mandatory element (username)");
        assert_eq!(error_of(&d.register(HandleId(9), tx(), Err(e))).0, 475);
        let fx = d.register(HandleId(9), tx(), Ok("dave".into()));
        assert_eq!(events_to(&fx, HandleId(9))[0]["result"], json!({"event": "registered", "username": "dave"}));
        // Detaching frees the name.
        d.detach(B);
        let fx = d.list(A, tx());
        assert_eq!(events_to(&fx, A)[0]["result"]["list"], json!(["alice", "carol", "dave"]));
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn call_errors_in_janus_order() {
        let mut d = registered();
        d.attach(HandleId(9));
        let fx = d.call(HandleId(9), tx(), Ok("bob".into()), offer());
        assert_eq!(error_of(&fx), (473, "Register a username first".into()));
        assert!(closes(&fx, HandleId(9)));
        let fx = d.call(A, tx(), Ok("alice".into()), offer());
        assert_eq!(error_of(&fx), (479, "You can't call yourself... use the EchoTest for that".into()));
        let fx = d.call(A, tx(), Ok("nobody".into()), offer());
        assert_eq!(error_of(&fx), (478, "Username 'nobody' doesn't exist".into()));
        assert!(closes(&fx, A));
        let fx = d.call(A, tx(), Ok("bob".into()), None);
        assert_eq!(error_of(&fx), (482, "Missing SDP".into()));
        assert!(!closes(&fx, A), "no PeerConnection to close without SDP");
        let fx = d.call(A, tx(), Ok("bob".into()), Some(Err("bad".into())));
        assert_eq!(error_of(&fx), (483, "Error parsing offer: bad".into()));
        // Nothing above changed any state.
        assert_eq!(d.info(A), CallInfo { username: Some("alice".into()), peer: None, in_call: false });
    }

    #[test]
    fn call_accept_hangup() {
        let mut d = registered();
        let fx = d.call(A, tx(), Ok("bob".into()), offer());
        let to_bob: Vec<&Effect> = fx.iter().filter(|e| matches!(e, Effect::Event { to, .. } if *to == B)).collect();
        match to_bob.as_slice() {
            [Effect::Event { tx: None, data, jsep: Attach::Offer(spec), .. }] => {
                assert_eq!(data["result"], json!({"event": "incomingcall", "username": "alice"}));
                assert_eq!(spec.tracks.len(), 2);
                assert!(spec.data);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(events_to(&fx, A)[0]["result"], json!({"event": "calling", "username": "bob"}));
        assert_eq!(d.info(B).peer.as_deref(), Some("alice"));

        // Busy: carol calls bob, bob calls carol while ringing; nobody can accept twice.
        let fx = d.call(C, tx(), Ok("bob".into()), offer());
        assert_eq!(
            events_to(&fx, C)[0]["result"],
            json!({"event": "hangup", "username": "carol", "reason": "User busy"})
        );
        assert!(closes(&fx, C));
        assert_eq!(error_of(&d.call(B, tx(), Ok("carol".into()), offer())), (480, "Already in a call".into()));
        assert_eq!(error_of(&d.accept(A, tx(), answer())), (481, "No incoming call to accept".into()));
        assert_eq!(error_of(&d.accept(B, tx(), None)), (482, "Missing SDP".into()));

        let fx = d.accept(B, tx(), answer());
        match fx.first() {
            Some(Effect::Link { a, b, pairs }) => {
                assert_eq!((*a, *b), (A, B));
                assert_eq!(pairs.len(), 2);
                assert_eq!((pairs[1].offerer.as_str(), pairs[1].answerer.as_str()), ("v", "1"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(fx.iter().any(|e| matches!(e, Effect::Event { to, jsep: Attach::Answer, data, .. }
            if *to == A && data["result"] == json!({"event": "accepted", "username": "bob"}))));
        assert_eq!(events_to(&fx, B)[0]["result"], json!({"event": "accepted"}));
        assert_eq!(error_of(&d.accept(B, tx(), answer())).0, 481);

        let fx = d.hangup(B, tx(), None);
        assert!(matches!(fx.first(), Some(Effect::Unlink(x, y)) if (*x, *y) == (B, A)));
        assert_eq!(
            events_to(&fx, B)[0]["result"],
            json!({"event": "hangup", "username": "bob", "reason": "Explicit hangup"})
        );
        assert_eq!(
            events_to(&fx, A)[0]["result"],
            json!({"event": "hangup", "username": "bob", "reason": "We did the hangup"})
        );
        assert!(closes(&fx, A) && closes(&fx, B));
        // Both can call again.
        let fx = d.call(B, tx(), Ok("alice".into()), offer());
        assert_eq!(events_to(&fx, B)[0]["result"]["event"], "calling");
    }

    #[test]
    fn declining_and_cancelling() {
        let mut d = registered();
        d.call(A, tx(), Ok("bob".into()), offer());
        let fx = d.hangup(B, tx(), Some("busy now".into()));
        assert_eq!(events_to(&fx, A)[0]["result"]["reason"], "busy now");
        assert!(!d.info(A).in_call && !d.info(B).in_call);
        // The caller's handle goes away while ringing: the callee is told.
        d.call(A, tx(), Ok("bob".into()), offer());
        let fx = d.detach(A);
        assert_eq!(
            events_to(&fx, B)[0]["result"],
            json!({"event": "hangup", "username": "alice", "reason": "Remote WebRTC hangup"})
        );
        assert!(closes(&fx, B));
        assert_eq!(d.info(B), CallInfo { username: Some("bob".into()), peer: None, in_call: false });
        // Hangup with no call still answers.
        let fx = d.hangup(C, tx(), None);
        assert_eq!(events_to(&fx, C)[0]["result"]["event"], "hangup");
    }

    #[test]
    fn pc_gone_ends_the_call() {
        let mut d = in_call();
        let fx = d.hangup_media(A);
        assert!(matches!(fx.first(), Some(Effect::Unlink(..))));
        assert!(closes(&fx, B));
        assert!(d.hangup_media(A).is_empty(), "second time: nothing left to end");
        assert!(d.hangup_media(B).is_empty());
    }

    #[test]
    fn renegotiation() {
        let mut d = in_call();
        let more = Some(Ok(Sdp::Offer(Offered {
            tracks: vec![sec("a", MediaKind::Audio), sec("v", MediaKind::Video), sec("w", MediaKind::Video)],
            data: false,
            e2ee: false,
        })));
        let fx = d.set(A, tx(), more);
        assert_eq!(events_to(&fx, A)[0]["result"], json!({"event": "set"}));
        match fx.iter().find(|e| matches!(e, Effect::Event { to, .. } if *to == B)) {
            Some(Effect::Event { data, jsep: Attach::Offer(spec), .. }) => {
                assert_eq!(data["result"], json!({"event": "update"}));
                let mids: Vec<Option<&str>> = spec.tracks.iter().map(|t| t.mid.as_deref()).collect();
                assert_eq!(mids, vec![Some("0"), Some("1"), None]);
            }
            other => panic!("unexpected {other:?}"),
        }
        let reply = Some(Ok(Sdp::Answer(vec![
            sec("0", MediaKind::Audio),
            sec("1", MediaKind::Video),
            sec("2", MediaKind::Video),
        ])));
        let fx = d.set(B, tx(), reply.clone());
        assert!(matches!(fx.first(), Some(Effect::Link { a, pairs, .. }) if *a == A && pairs.len() == 3));
        assert!(fx.iter().any(|e| matches!(e, Effect::Event { to, jsep: Attach::Answer, .. } if *to == A)));
        // An answer nobody waits for changes nothing.
        let fx = d.set(B, tx(), reply);
        assert_eq!(fx.len(), 1);
        // Outside a call a JSEP is ignored.
        let fx = d.set(C, tx(), offer());
        assert_eq!(fx.len(), 1);
    }
}
