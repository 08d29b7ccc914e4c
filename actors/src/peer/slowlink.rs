//! `slowlink` detection: once a second the PeerConnection compares each stream's cumulative loss
//! with the previous sample; a jump of at least `slowlink_threshold` packets is reported (at most
//! once every few seconds per stream and direction, so a bad link is not a flood of events).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::media::{LossSample, PeerEvent};

/// The quiet time after a `slowlink` for the same stream and direction.
const REPEAT_AFTER: Duration = Duration::from_secs(5);

/// Loss seen so far, per (mid, uplink).
#[derive(Debug, Default)]
pub struct SlowLinkDetector {
    last: HashMap<(String, bool), u64>,
    reported: HashMap<(String, bool), Instant>,
}

impl SlowLinkDetector {
    /// The events `samples` call for, given the threshold (packets since the previous sample).
    pub fn check(&mut self, samples: Vec<LossSample>, threshold: u64, now: Instant) -> Vec<PeerEvent> {
        let mut events = Vec::new();
        for s in samples {
            let key = (s.mid.clone(), s.uplink);
            let before = self.last.insert(key.clone(), s.lost);
            // The first sample only sets the baseline; counters that went back (a new stream) too.
            let Some(lost) = before.and_then(|b| s.lost.checked_sub(b)) else { continue };
            if threshold == 0 || lost < threshold {
                continue;
            }
            if self.reported.get(&key).is_some_and(|t| now.duration_since(*t) < REPEAT_AFTER) {
                continue;
            }
            self.reported.insert(key, now);
            events.push(PeerEvent::SlowLink { mid: s.mid, kind: s.kind, uplink: s.uplink, lost });
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaKind;

    fn sample(mid: &str, uplink: bool, lost: u64) -> LossSample {
        LossSample { mid: mid.into(), kind: MediaKind::Video, uplink, lost }
    }

    #[test]
    fn reports_jumps_over_the_threshold_per_direction() {
        let mut d = SlowLinkDetector::default();
        let t0 = Instant::now();
        assert!(d.check(vec![sample("1", false, 100), sample("1", true, 0)], 5, t0).is_empty(), "baseline");
        let ev = d.check(vec![sample("1", false, 104), sample("1", true, 9)], 5, t0 + Duration::from_secs(1));
        assert!(
            matches!(&ev[..], [PeerEvent::SlowLink { mid, kind: MediaKind::Video, uplink: true, lost: 9 }] if mid == "1")
        );
        // Again within the quiet time: nothing; after it: reported again.
        assert!(d.check(vec![sample("1", true, 30)], 5, t0 + Duration::from_secs(2)).is_empty());
        let ev = d.check(vec![sample("1", true, 40)], 5, t0 + Duration::from_secs(8));
        assert!(matches!(&ev[..], [PeerEvent::SlowLink { lost: 10, uplink: true, .. }]));
    }

    #[test]
    fn disabled_or_reset_counters_report_nothing() {
        let mut d = SlowLinkDetector::default();
        let t0 = Instant::now();
        d.check(vec![sample("0", false, 50)], 0, t0);
        assert!(d.check(vec![sample("0", false, 500)], 0, t0 + Duration::from_secs(1)).is_empty());
        assert!(d.check(vec![sample("0", false, 3)], 1, t0 + Duration::from_secs(2)).is_empty());
    }
}
