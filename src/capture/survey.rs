//! `callrec devices --propose`: what capture hardware is plugged in, grouped into desks and
//! seats, written out as `[[device]]` / `[[seat]]` sections (to paste below `[box]` and
//! `[storage]`) and as udev rules that pin each card's name to its USB port.
//!
//! Grouping: a device with 3 or more channels is a desk interface whose channel pairs are
//! seats (agent = the odd input on the panel, customer = the even one); a 2-channel device is
//! one seat (a line adapter carrying both parties); 1-channel devices are paired in USB port
//! order into seats (headset = agent, line tap = customer). It is a proposal a technician
//! checks with `callrec devices --listen`, never a decision: nothing here opens a device or
//! writes a file; it only reads what cpal lists and, for cards, /sys and the udev database.

use std::fmt::Write as _;
use std::path::Path;

/// A capture device as found on the box.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// cpal id, e.g. "alsa:hw:CARD=Audio16,DEV=0".
    pub id: String,
    pub description: String,
    /// Channels it captures natively; `None` for a converting PCM that accepts any count
    /// (ALSA `plug`), unless the technician said how many (`--channels ID=N`).
    pub channels: Option<u16>,
    pub rate_hz: u32,
    /// The sound card behind an `hw:` id and where it is plugged in.
    pub card: Option<Card>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// The card's current ALSA id (`/sys/class/sound/cardN/id`).
    pub id: String,
    /// udev's `ID_PATH` of the card (stable per physical port), when udev knows it.
    pub id_path: Option<String>,
    /// The USB interface the card is on (e.g. "1-1.4:1.0"), when it is a USB device.
    pub usb_port: Option<String>,
}

/// The sections to paste into the config, and the udev rules file that pins the names.
pub struct Proposal {
    pub config: String,
    pub udev_rules: String,
}

/// The card id in an ALSA device id such as `alsa:hw:CARD=Audio16,DEV=0`.
pub fn card_of(id: &str) -> Option<&str> {
    let rest = id.split_once("CARD=")?.1;
    Some(rest.split(',').next().unwrap_or(rest))
}

/// Looks a card up in /sys (and udev's database under /run/udev/data) by its ALSA id.
pub fn card_info(sys_root: &Path, card_id: &str) -> Option<Card> {
    let class = sys_root.join("sys/class/sound");
    for entry in std::fs::read_dir(&class).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(n) = name.strip_prefix("card") else {
            continue;
        };
        let id = std::fs::read_to_string(entry.path().join("id")).unwrap_or_default();
        if id.trim() != card_id {
            continue;
        }
        let udev = std::fs::read_to_string(sys_root.join(format!("run/udev/data/+sound:card{n}")))
            .unwrap_or_default();
        let id_path = udev
            .lines()
            .find_map(|l| l.strip_prefix("E:ID_PATH="))
            .map(str::to_owned);
        let usb_port = std::fs::canonicalize(entry.path().join("device"))
            .ok()
            .filter(|p| p.to_string_lossy().contains("/usb"))
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
        return Some(Card {
            id: card_id.to_owned(),
            id_path,
            usb_port,
        });
    }
    None
}

/// A config name from anything (`alsa:desk16` -> `desk16`).
fn name_from(id: &str) -> String {
    let base = id.strip_prefix("alsa:").unwrap_or(id);
    let base = card_of(base).unwrap_or(base);
    let s: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() {
        "device".into()
    } else {
        s
    }
}

/// Where a device is, for the comments: its USB port and udev path, or its id.
fn place(f: &Found) -> String {
    match &f.card {
        Some(Card {
            usb_port: Some(port),
            id_path,
            id,
        }) => format!(
            "USB port {port}{} (card {id})",
            id_path
                .as_deref()
                .map(|p| format!(", ID_PATH {p}"))
                .unwrap_or_default()
        ),
        Some(c) => format!("card {} (not USB)", c.id),
        None => format!("{} ({})", f.id, f.description),
    }
}

struct Named<'a> {
    found: &'a Found,
    /// The name in the config, and the card id the udev rule gives it (when it is pinned).
    name: String,
    pinned: bool,
}

impl Named<'_> {
    fn pcm(&self) -> String {
        if self.pinned {
            format!("alsa:hw:CARD={},DEV=0", self.name)
        } else {
            self.found.id.clone()
        }
    }
}

/// Groups what was found into desks and seats (see the module doc).
pub fn propose<'a>(found: &'a [Found]) -> Proposal {
    // A box should capture from its cards directly; software PCMs only when there are none.
    let hw: Vec<&Found> = found.iter().filter(|f| f.id.contains("hw:")).collect();
    let mut pool: Vec<&'a Found> = if hw.is_empty() {
        found.iter().collect()
    } else {
        hw
    };
    pool.sort_by_key(|f| {
        let port = f.card.as_ref().and_then(|c| c.usb_port.clone());
        (port.is_none(), port, f.id.clone())
    });
    let (known, unknown): (Vec<&'a Found>, Vec<&'a Found>) =
        pool.into_iter().partition(|f| f.channels.is_some());

    let mut cfg = String::new();
    let mut rules: Vec<(Option<Card>, String)> = Vec::new();
    let mut taken = std::collections::HashSet::new();
    let (mut desk_n, mut seat_n) = (0, 0);
    // A card on a USB port gets `pinned_name` (its udev rule makes it so); anything else keeps
    // its id and a config name derived from it.
    let mut name = |f: &'a Found, pinned_name: String| -> Named<'a> {
        let pinned = f
            .card
            .as_ref()
            .is_some_and(|c| c.usb_port.is_some() || c.id_path.is_some());
        let mut name = if pinned {
            pinned_name
        } else {
            name_from(&f.id)
        };
        let stem = name.clone();
        let mut k = 1;
        while !taken.insert(name.clone()) {
            k += 1;
            name = format!("{stem}-{k}");
        }
        if pinned {
            rules.push((f.card.clone(), name.clone()));
        }
        Named {
            found: f,
            name,
            pinned,
        }
    };
    let device = |cfg: &mut String, d: &Named| {
        let f = d.found;
        let _ = writeln!(
            cfg,
            "# {}: {}, {} channel(s) at {} Hz",
            d.name,
            place(f),
            f.channels.unwrap_or(0),
            f.rate_hz
        );
        if d.pinned {
            let _ = writeln!(
                cfg,
                "# (named by the udev rules of `callrec devices --propose --udev`; today it is {})",
                f.id
            );
        }
        let _ = writeln!(
            cfg,
            "[[device]]\nname = \"{}\"\npcm = \"{}\"\nchannels = {}\nrate_hz = {}\n",
            d.name,
            d.pcm(),
            f.channels.unwrap_or(0),
            f.rate_hz
        );
    };

    let mut monos = Vec::new();
    for f in &known {
        let ch = f.channels.unwrap_or(0);
        if ch == 1 {
            monos.push(*f);
            continue;
        }
        let d = if ch >= 3 {
            desk_n += 1;
            name(f, format!("desk{desk_n:02}"))
        } else {
            name(f, format!("seat{:02}l", seat_n + 1))
        };
        device(&mut cfg, &d);
        for pair in 0..ch / 2 {
            seat_n += 1;
            let (a, c) = (pair * 2, pair * 2 + 1);
            let _ = writeln!(
                cfg,
                "# seat{seat_n:02}: {} inputs {} + {} (channels {a}, {c}): agent on {}, customer on {}; swap if wired the other way\n[[seat]]\nid = \"seat{seat_n:02}\"\ndevice = \"{}\"\nagent_channel = {a}\ncustomer_channel = {c}\n",
                d.name,
                a + 1,
                c + 1,
                a + 1,
                c + 1,
                d.name
            );
        }
        if ch % 2 == 1 {
            let _ = writeln!(
                cfg,
                "# {}: input {} (channel {}) is left over: pair it with another device's channel (agent_device/customer_device)\n",
                d.name,
                ch,
                ch - 1
            );
        }
    }
    for pair in monos.chunks(2) {
        let [agent, customer] = pair else {
            let _ = writeln!(
                cfg,
                "# {} ({}) is a single mono device left over: pair it with a channel of another device\n",
                pair[0].id,
                place(pair[0])
            );
            continue;
        };
        seat_n += 1;
        let h = name(agent, format!("seat{seat_n:02}h"));
        let l = name(customer, format!("seat{seat_n:02}l"));
        device(&mut cfg, &h);
        device(&mut cfg, &l);
        let _ = writeln!(
            cfg,
            "# seat{seat_n:02}: agent = {} (headset), customer = {} (line tap): tap the headset with `callrec devices --listen` to check, swap the two if not\n[[seat]]\nid = \"seat{seat_n:02}\"\nagent_device = \"{}\"\nagent_channel = 0\ncustomer_device = \"{}\"\ncustomer_channel = 0\n",
            h.name, l.name, h.name, l.name
        );
    }
    for f in unknown {
        let _ = writeln!(
            cfg,
            "# not proposed: {} ({}) converts any channel count, so its own is unknown; run again with --channels {}=N",
            f.id, f.description, f.id
        );
    }
    if seat_n == 0 {
        cfg.push_str(
            "# no seat could be proposed from the devices found (see `callrec devices`)\n",
        );
    }
    Proposal {
        config: format!(
            "# Proposed by `callrec devices --propose`: paste below [box] and [storage], check each seat\n# with `callrec devices --listen DEVICE` (tap a headset, watch its channel), then run\n# `callrec config check`. Channels are 0-based; panel inputs are numbered from 1.\n\n{cfg}"
        ),
        udev_rules: udev_rules(&rules),
    }
}

fn udev_rules(rules: &[(Option<Card>, String)]) -> String {
    let mut out = String::from(
        "# callrec: card names pinned to USB ports, proposed by `callrec devices --propose --udev`.\n\
         # Install as /etc/udev/rules.d/90-callrec-seats.rules, stop the recorder, then:\n\
         #     udevadm control --reload && udevadm trigger --action=add --subsystem-match=sound\n\
         # (see hw/udev/90-callrec-seats.rules for how these rules work)\n\n\
         SUBSYSTEM!=\"sound\", GOTO=\"callrec_seats_end\"\n\
         ACTION!=\"add\", GOTO=\"callrec_seats_end\"\n\
         KERNEL!=\"card[0-9]*\", GOTO=\"callrec_seats_end\"\n\
         IMPORT{builtin}=\"path_id\"\n\n",
    );
    if rules.is_empty() {
        out.push_str("# no USB sound card found: nothing to pin\n");
    }
    for (card, name) in rules {
        let Some(card) = card else { continue };
        let _ = match (&card.id_path, &card.usb_port) {
            (Some(p), port) => writeln!(
                out,
                "# {name}: today card {}{}\nENV{{ID_PATH}}==\"{p}\", ATTR{{id}}=\"{name}\"",
                card.id,
                port.as_deref()
                    .map(|p| format!(" on USB port {p}"))
                    .unwrap_or_default()
            ),
            (None, Some(port)) => writeln!(
                out,
                "# {name}: today card {} (udev gave no ID_PATH: matched by USB interface)\nKERNELS==\"{port}\", ATTR{{id}}=\"{name}\"",
                card.id
            ),
            (None, None) => Ok(()),
        };
    }
    out.push_str("\nLABEL=\"callrec_seats_end\"\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usb(id: &str, ch: u16, card: &str, port: &str) -> Found {
        Found {
            id: id.into(),
            description: "USB Audio".into(),
            channels: Some(ch),
            rate_hz: 48_000,
            card: Some(Card {
                id: card.into(),
                id_path: Some(format!("pci-0000:00:14.0-usb-0:{port}:1.0")),
                usb_port: Some(format!("1-{port}:1.0")),
            }),
        }
    }

    #[test]
    fn desks_headsets_and_line_adapters_become_seats_with_pinned_names() {
        let found = vec![
            // Sorted by USB port: the desk on 1.1, the adapter on 1.2, headset + tap on 2.x.
            usb("alsa:hw:CARD=Line,DEV=0", 1, "Line", "2.2"),
            usb("alsa:hw:CARD=Headset,DEV=0", 1, "Headset", "2.1"),
            usb("alsa:hw:CARD=Adapter,DEV=0", 2, "Adapter", "1.2"),
            usb("alsa:hw:CARD=Audio16,DEV=0", 16, "Audio16", "1.1"),
            Found {
                id: "alsa:default".into(),
                description: "Default".into(),
                channels: None,
                rate_hz: 48_000,
                card: None,
            },
        ];
        let p = propose(&found);
        let c = &p.config;
        // 8 desk seats, 1 adapter seat, 1 headset + tap seat.
        assert_eq!(c.matches("[[seat]]").count(), 10, "{c}");
        assert_eq!(c.matches("[[device]]").count(), 4, "{c}");
        assert!(
            c.contains("name = \"desk01\"\npcm = \"alsa:hw:CARD=desk01,DEV=0\"\nchannels = 16"),
            "{c}"
        );
        assert!(
            c.contains(
                "id = \"seat08\"\ndevice = \"desk01\"\nagent_channel = 14\ncustomer_channel = 15"
            ),
            "{c}"
        );
        assert!(c.contains("desk01 inputs 15 + 16 (channels 14, 15)"), "{c}");
        assert!(
            c.contains(
                "id = \"seat09\"\ndevice = \"seat09l\"\nagent_channel = 0\ncustomer_channel = 1"
            ),
            "{c}"
        );
        assert!(
            c.contains(
                "agent_device = \"seat10h\"\nagent_channel = 0\ncustomer_device = \"seat10l\""
            ),
            "{c}"
        );
        assert!(c.contains("USB port 1-2.1:1.0"), "{c}");
        // Software PCMs are not proposed when there are cards.
        assert!(!c.contains("alsa:default"), "{c}");
        let u = &p.udev_rules;
        for (path, name) in [
            ("1.1", "desk01"),
            ("1.2", "seat09l"),
            ("2.1", "seat10h"),
            ("2.2", "seat10l"),
        ] {
            let line = format!(
                "ENV{{ID_PATH}}==\"pci-0000:00:14.0-usb-0:{path}:1.0\", ATTR{{id}}=\"{name}\""
            );
            assert!(u.contains(&line), "{line} missing from\n{u}");
        }
        assert!(u.ends_with("LABEL=\"callrec_seats_end\"\n"));
    }

    #[test]
    fn software_pcms_are_used_when_there_is_no_card_and_unknown_counts_are_named() {
        let soft = |id: &str, ch: Option<u16>| Found {
            id: id.into(),
            description: "test".into(),
            channels: ch,
            rate_hz: 48_000,
            card: None,
        };
        let found = vec![soft("alsa:desk4", Some(5)), soft("alsa:other", None)];
        let c = propose(&found).config;
        assert!(
            c.contains("name = \"desk4\"\npcm = \"alsa:desk4\"\nchannels = 5"),
            "{c}"
        );
        assert_eq!(c.matches("[[seat]]").count(), 2, "{c}");
        assert!(c.contains("input 5 (channel 4) is left over"), "{c}");
        assert!(c.contains("--channels alsa:other=N"), "{c}");
        assert_eq!(card_of("alsa:hw:CARD=desk01,DEV=0"), Some("desk01"));
        assert_eq!(card_of("alsa:desk4"), None);
    }
}
