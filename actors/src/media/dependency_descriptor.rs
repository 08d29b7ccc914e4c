//! The AV1 RTP spec's Dependency Descriptor header extension (appendix A of
//! <https://aomediacodec.github.io/av1-rtp-spec/>), as far as SVC layer selection needs it.
//!
//! Every packet carries the mandatory fields (start and end of frame, template id, frame
//! number); the first packet of a coded video sequence (a keyframe) also carries the template
//! dependency structure, which maps each template id to a spatial and temporal layer and to the
//! frame's decode target indications. A receiver, or an SFU choosing layers for it, can only read
//! a packet's layers once it has the structure, so the sender must be asked for a keyframe when
//! one starts mid-stream.
//!
//! `rtc` has no parser for it; this one is ours. It reads only what it needs (frame dependency
//! differences and chains are skipped, not kept), allocates only for a new structure, and never
//! panics: truncated or malformed input gives `None`.

/// MAX_TEMPLATE_ID + 1: template ids are 6 bits and wrap.
const TEMPLATE_IDS: usize = 64;
/// More decode targets than this cannot be described (dtis_cnt_minus_one is 5 bits).
const MAX_DECODE_TARGETS: u8 = 32;
/// The most spatial layers a structure can name (MAX_SPATIAL_ID + 1).
const MAX_SPATIAL: u8 = 4;
/// The most temporal layers a structure can name (MAX_TEMPORAL_ID + 1).
const MAX_TEMPORAL: u8 = 8;

/// Decode target indication: the frame is not in the decode target.
pub const DTI_NOT_PRESENT: u8 = 0;
/// Decode target indication: switching to the decode target can start at this frame.
pub const DTI_SWITCH: u8 = 2;

/// One packet's descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyDescriptor {
    /// The packet starts a frame (one layer of a picture).
    pub start_of_frame: bool,
    /// The packet ends a frame.
    pub end_of_frame: bool,
    /// frame_dependency_template_id.
    pub template_id: u8,
    /// frame_number (16 bits, wrapping, increasing in decode order).
    pub frame_number: u16,
    /// The template dependency structure, when the packet carries one (keyframes).
    pub structure: Option<FrameDependencyStructure>,
    /// active_decode_targets_bitmask, when present.
    pub active_decode_targets: Option<u32>,
    /// The frame's own decode target indications (custom_dtis), 2 bits per target, target 0 in
    /// the lowest bits.
    pub custom_dtis: Option<u64>,
}

/// A template dependency structure: the layers and decode target indications of each template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameDependencyStructure {
    /// template_id_offset: the template id of the first template.
    pub template_id_offset: u8,
    /// How many decode targets (DtisCnt).
    pub decode_targets: u8,
    /// The templates, by index.
    pub templates: Vec<FrameTemplate>,
    /// How many chains (needed to skip a frame's custom chain differences).
    pub chains: u8,
    /// Render resolution of each spatial layer, when the structure gives them.
    pub resolutions: Vec<(u16, u16)>,
}

/// One frame dependency template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTemplate {
    /// Spatial layer id.
    pub spatial: u8,
    /// Temporal layer id.
    pub temporal: u8,
    /// Decode target indications, 2 bits per target, target 0 in the lowest bits.
    pub dtis: u64,
}

/// The layers of one frame, read through a structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLayers {
    /// Spatial layer id.
    pub spatial: u8,
    /// Temporal layer id.
    pub temporal: u8,
    /// Decode target indications, 2 bits per target, target 0 in the lowest bits.
    pub dtis: u64,
}

impl FrameDependencyStructure {
    /// The template a frame's template id names, if it belongs to this structure.
    pub fn template(&self, template_id: u8) -> Option<&FrameTemplate> {
        let index = (usize::from(template_id) + TEMPLATE_IDS - usize::from(self.template_id_offset)) % TEMPLATE_IDS;
        self.templates.get(index)
    }

    /// The highest spatial and temporal layer ids of the templates.
    pub fn max_layers(&self) -> (u8, u8) {
        self.templates.iter().fold((0, 0), |(s, t), tpl| (s.max(tpl.spatial), t.max(tpl.temporal)))
    }

    /// The decode target that gives exactly spatial layer `spatial` at temporal layer
    /// `temporal`: the one whose present frames reach those layers and no higher. Browsers
    /// number them `spatial * temporal_layers + temporal`; this does not assume it.
    pub fn decode_target(&self, spatial: u8, temporal: u8) -> Option<u8> {
        (0..self.decode_targets).find(|&dt| {
            let (mut s, mut t, mut any) = (0, 0, false);
            for tpl in &self.templates {
                if dti(tpl.dtis, dt) != DTI_NOT_PRESENT {
                    (s, t, any) = (s.max(tpl.spatial), t.max(tpl.temporal), true);
                }
            }
            any && (s, t) == (spatial, temporal)
        })
    }
}

impl DependencyDescriptor {
    /// The frame's layers and decode target indications, read through its own structure if it
    /// has one, else `latest` (the last one the sender sent); `None` when the template id
    /// belongs to neither (a structure this receiver has not seen).
    pub fn layers(&self, latest: Option<&FrameDependencyStructure>) -> Option<FrameLayers> {
        let structure = self.structure.as_ref().or(latest)?;
        let tpl = structure.template(self.template_id)?;
        Some(FrameLayers { spatial: tpl.spatial, temporal: tpl.temporal, dtis: self.custom_dtis.unwrap_or(tpl.dtis) })
    }
}

/// The decode target indication for target `dt` in a 2-bit-per-target set.
pub fn dti(dtis: u64, dt: u8) -> u8 {
    if dt >= MAX_DECODE_TARGETS {
        return DTI_NOT_PRESENT;
    }
    ((dtis >> (2 * u32::from(dt))) & 0b11) as u8
}

/// Parses a descriptor. Its extended fields may depend on the current structure (`latest`, the
/// last one the sender sent) when the packet carries none: then `None` without it.
pub fn parse(value: &[u8], latest: Option<&FrameDependencyStructure>) -> Option<DependencyDescriptor> {
    let mut r = Bits::new(value);
    let mut dd = DependencyDescriptor {
        start_of_frame: r.bit()?,
        end_of_frame: r.bit()?,
        template_id: r.bits(6)? as u8,
        frame_number: r.bits(16)? as u16,
        structure: None,
        active_decode_targets: None,
        custom_dtis: None,
    };
    if value.len() <= 3 {
        return Some(dd);
    }
    let structure_present = r.bit()?;
    let active_present = r.bit()?;
    let custom_dtis = r.bit()?;
    let custom_fdiffs = r.bit()?;
    let custom_chains = r.bit()?;
    if structure_present {
        let s = structure(&mut r)?;
        dd.active_decode_targets = Some(all_targets(s.decode_targets));
        dd.structure = Some(s);
    }
    let (decode_targets, chains) = match dd.structure.as_ref().or(latest) {
        Some(s) => (s.decode_targets, s.chains),
        // Nothing past the flags can be read without a structure.
        None if !(active_present || custom_dtis || custom_fdiffs || custom_chains) => return Some(dd),
        None => return None,
    };
    if active_present {
        dd.active_decode_targets = Some(r.bits(u32::from(decode_targets))?);
    }
    if custom_dtis {
        let mut dtis = 0u64;
        for dt in 0..decode_targets {
            dtis |= u64::from(r.bits(2)?) << (2 * u32::from(dt));
        }
        dd.custom_dtis = Some(dtis);
    }
    if custom_fdiffs {
        loop {
            let size = r.bits(2)?;
            if size == 0 {
                break;
            }
            r.bits(4 * size)?;
        }
    }
    if custom_chains {
        for _ in 0..chains {
            r.bits(8)?;
        }
    }
    Some(dd)
}

fn all_targets(n: u8) -> u32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
    }
}

/// template_dependency_structure().
fn structure(r: &mut Bits<'_>) -> Option<FrameDependencyStructure> {
    let template_id_offset = r.bits(6)? as u8;
    let decode_targets = r.bits(5)? as u8 + 1;
    // template_layers(): each template's layers follow from the previous one's.
    let mut templates = Vec::new();
    let (mut spatial, mut temporal) = (0u8, 0u8);
    loop {
        if templates.len() == TEMPLATE_IDS || spatial >= MAX_SPATIAL || temporal >= MAX_TEMPORAL {
            return None;
        }
        templates.push(FrameTemplate { spatial, temporal, dtis: 0 });
        match r.bits(2)? {
            0 => {}
            1 => temporal += 1,
            2 => (spatial, temporal) = (spatial + 1, 0),
            _ => break,
        }
    }
    // template_dtis()
    for tpl in &mut templates {
        for dt in 0..decode_targets {
            tpl.dtis |= u64::from(r.bits(2)?) << (2 * u32::from(dt));
        }
    }
    // template_fdiffs(): read past.
    for _ in 0..templates.len() {
        while r.bit()? {
            r.bits(4)?;
        }
    }
    // template_chains()
    let chains = r.ns(u32::from(decode_targets) + 1)? as u8;
    if chains > 0 {
        for _ in 0..decode_targets {
            r.ns(u32::from(chains) + 1)?;
        }
        for _ in 0..templates.len() * usize::from(chains) {
            r.bits(4)?;
        }
    }
    let mut resolutions = Vec::new();
    if r.bit()? {
        let layers = templates.iter().map(|t| t.spatial).max().unwrap_or(0);
        for _ in 0..=layers {
            let w = r.bits(16)? as u16;
            let h = r.bits(16)? as u16;
            resolutions.push((w.wrapping_add(1), h.wrapping_add(1)));
        }
    }
    Some(FrameDependencyStructure { template_id_offset, decode_targets, templates, chains, resolutions })
}

/// A bounds-checked big-endian bit reader.
struct Bits<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Bits { buf, pos: 0 }
    }

    fn bit(&mut self) -> Option<bool> {
        let byte = *self.buf.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1 == 1;
        self.pos += 1;
        Some(bit)
    }

    /// f(n), n <= 32.
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut x = 0u32;
        for _ in 0..n.min(32) {
            x = (x << 1) | u32::from(self.bit()?);
        }
        Some(x)
    }

    /// ns(n): a non-symmetric unsigned value in 0..n.
    fn ns(&mut self, n: u32) -> Option<u32> {
        let w = 32 - n.leading_zeros();
        let m = (1u32 << w) - n;
        let v = self.bits(w.saturating_sub(1))?;
        if v < m {
            return Some(v);
        }
        let extra = self.bits(1)?;
        Some((v << 1) - m + extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes bits big-endian, for crafting descriptors.
    #[derive(Default)]
    struct Writer {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl Writer {
        fn put(&mut self, n: u32, value: u32) -> &mut Self {
            for i in (0..n).rev() {
                if self.bits.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                if (value >> i) & 1 == 1 {
                    *self.bytes.last_mut().unwrap() |= 0x80 >> (self.bits % 8);
                }
                self.bits += 1;
            }
            self
        }
    }

    /// An L2T2 structure (spatial-major decode targets S0T0, S0T1, S1T0, S1T1): templates S0T0,
    /// S0T1, S1T0, S1T1; one chain per spatial layer; resolutions 320x180 and 640x360.
    fn l2t2_keyframe(template_id_offset: u32) -> Vec<u8> {
        let mut w = Writer::default();
        // Mandatory: start, end, template id = offset (S0T0), frame number 0x1234.
        w.put(1, 1).put(1, 0).put(6, template_id_offset).put(16, 0x1234);
        // Extended flags: structure present, no active targets, no custom fields.
        w.put(5, 0b10000);
        w.put(6, template_id_offset).put(5, 3);
        // template_layers: S0T0 -(1)-> S0T1 -(2)-> S1T0 -(1)-> S1T1 -(3)-> end.
        w.put(2, 1).put(2, 2).put(2, 1).put(2, 3);
        // template_dtis (2 bits per target, target 0 first): S=2, R=3, D=1, -=0.
        for dtis in [[2, 2, 2, 2], [0, 1, 0, 1], [0, 0, 2, 2], [0, 0, 0, 1]] {
            for d in dtis {
                w.put(2, d);
            }
        }
        // template_fdiffs: none, 1, 1 (S1T0 refers to S0T0 of the same picture), 1.
        w.put(1, 0);
        for _ in 0..3 {
            w.put(1, 1).put(4, 0).put(1, 0);
        }
        // template_chains: ns(5) = 2 chains (w=3, m=3: v=2 in 2 bits); targets protected by
        // ns(3): 0, 0, 1, 1 (w=2, m=1: v=0 in one bit, else v=1 plus an extra bit).
        w.put(2, 2);
        w.put(1, 0).put(1, 0).put(1, 1).put(1, 0).put(1, 1).put(1, 0);
        for _ in 0..8 {
            w.put(4, 1);
        }
        // Resolutions present.
        w.put(1, 1).put(16, 319).put(16, 179).put(16, 639).put(16, 359);
        w.bytes
    }

    fn mandatory(start: bool, end: bool, template_id: u32, frame: u32) -> Vec<u8> {
        let mut w = Writer::default();
        w.put(1, start.into()).put(1, end.into()).put(6, template_id).put(16, frame);
        w.bytes
    }

    #[test]
    fn structure_on_a_keyframe() {
        let bytes = l2t2_keyframe(10);
        let dd = parse(&bytes, None).unwrap();
        assert!(dd.start_of_frame && !dd.end_of_frame);
        assert_eq!((dd.template_id, dd.frame_number), (10, 0x1234));
        assert_eq!(dd.active_decode_targets, Some(0b1111));
        let s = dd.structure.as_ref().unwrap();
        assert_eq!((s.template_id_offset, s.decode_targets, s.chains), (10, 4, 2));
        let layers: Vec<(u8, u8)> = s.templates.iter().map(|t| (t.spatial, t.temporal)).collect();
        assert_eq!(layers, vec![(0, 0), (0, 1), (1, 0), (1, 1)]);
        assert_eq!(s.resolutions, vec![(320, 180), (640, 360)]);
        assert_eq!(s.max_layers(), (1, 1));
        assert_eq!(
            [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)].map(|(sp, t)| s.decode_target(sp, t)),
            [Some(0), Some(1), Some(2), Some(3), None]
        );
        let l = dd.layers(None).unwrap();
        assert_eq!((l.spatial, l.temporal, dti(l.dtis, 0), dti(l.dtis, 3)), (0, 0, DTI_SWITCH, DTI_SWITCH));
    }

    #[test]
    fn later_packets_read_through_the_latest_structure() {
        let s = parse(&l2t2_keyframe(10), None).unwrap().structure.unwrap();
        // Template 13 = index 3: S1T1.
        let dd = parse(&mandatory(false, true, 13, 0x1235), Some(&s)).unwrap();
        assert!(dd.end_of_frame && dd.structure.is_none());
        let l = dd.layers(Some(&s)).unwrap();
        assert_eq!((l.spatial, l.temporal, dti(l.dtis, 3)), (1, 1, 1));
        // Without a structure the mandatory fields still parse, but not the layers.
        assert_eq!(dd.layers(None), None);
        assert_eq!(parse(&mandatory(false, true, 13, 0x1235), None).unwrap().frame_number, 0x1235);
        // A template id outside the structure (a newer one this receiver has not seen).
        assert_eq!(parse(&mandatory(true, true, 20, 1), Some(&s)).unwrap().layers(Some(&s)), None);
        // Template ids wrap at 64.
        let wrapped = parse(&l2t2_keyframe(62), None).unwrap().structure.unwrap();
        let dd = parse(&mandatory(true, false, 1, 9), Some(&wrapped)).unwrap();
        assert_eq!(dd.layers(Some(&wrapped)).map(|l| (l.spatial, l.temporal)), Some((1, 1)));
    }

    #[test]
    fn extended_fields_without_a_structure() {
        let s = parse(&l2t2_keyframe(0), None).unwrap().structure.unwrap();
        // Active decode targets 0b0011 and custom DTIs (R, R, -, -), template 1.
        let mut w = Writer::default();
        w.put(1, 1).put(1, 1).put(6, 1).put(16, 7).put(5, 0b01100).put(4, 0b0011);
        w.put(2, 3).put(2, 3).put(2, 0).put(2, 0);
        let dd = parse(&w.bytes, Some(&s)).unwrap();
        assert_eq!(dd.active_decode_targets, Some(0b0011));
        let l = dd.layers(Some(&s)).unwrap();
        assert_eq!((l.spatial, l.temporal, dti(l.dtis, 0), dti(l.dtis, 2)), (0, 1, 3, 0));
        // The same bytes cannot be read without the structure.
        assert_eq!(parse(&w.bytes, None), None);
        // Custom fdiffs and chains are read past: a truncated one is malformed.
        let mut w = Writer::default();
        w.put(1, 1).put(1, 1).put(6, 0).put(16, 7).put(5, 0b00011);
        w.put(2, 1).put(4, 3).put(2, 2).put(8, 200).put(2, 0).put(8, 1).put(8, 2);
        assert!(parse(&w.bytes, Some(&s)).is_some());
        assert_eq!(parse(&w.bytes[..w.bytes.len() - 1], Some(&s)), None);
    }

    #[test]
    fn garbage_never_panics() {
        let key = l2t2_keyframe(5);
        let s = parse(&key, None).unwrap().structure.unwrap();
        for len in 0..key.len() {
            let dd = parse(&key[..len], None);
            assert!(len >= 3 || dd.is_none(), "prefix {len}");
        }
        for seed in 0u32..5000 {
            let bytes: Vec<u8> =
                (0..(seed % 40)).map(|i| (seed.wrapping_mul(2654435761).rotate_left(i * 7) & 0xff) as u8).collect();
            if let Some(dd) = parse(&bytes, None) {
                let _ = dd.layers(None);
            }
            if let Some(dd) = parse(&bytes, Some(&s)) {
                let _ = dd.layers(Some(&s));
            }
        }
        // Every template layer bit pattern ends: at most 64 templates, 4 spatial, 8 temporal.
        let mut w = Writer::default();
        w.put(24, 0).put(5, 0b10000).put(6, 0).put(5, 0);
        for _ in 0..100 {
            w.put(2, 1);
        }
        assert_eq!(parse(&w.bytes, None), None);
        assert_eq!(dti(u64::MAX, 40), DTI_NOT_PRESENT);
    }
}
