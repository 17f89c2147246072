//! Which operating system this is, from `/etc/os-release` (or `/usr/lib/os-release`): the
//! `package` mode runs pacman only on Arch Linux and names the OS when it refuses.

use std::collections::BTreeMap;

/// The fields of os-release that matter here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`, e.g. `debian`, `arch`.
    pub id: String,
    /// `ID_LIKE`, split on spaces.
    pub id_like: Vec<String>,
    /// `PRETTY_NAME`, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub pretty_name: String,
}

impl OsRelease {
    /// Parses os-release text (`KEY=value`, values optionally quoted).
    pub fn parse(text: &str) -> Self {
        let fields: BTreeMap<&str, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim().trim_matches(['"', '\'']).to_string()))
            .collect();
        let id = fields.get("ID").cloned().unwrap_or_default();
        OsRelease {
            pretty_name: fields.get("PRETTY_NAME").cloned().unwrap_or_else(|| id.clone()),
            id_like: fields
                .get("ID_LIKE")
                .map(|v| v.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
            id,
        }
    }

    /// This host's, or an empty one (`unknown`) when neither file can be read.
    pub fn read() -> Self {
        ["/etc/os-release", "/usr/lib/os-release"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    /// Arch Linux or a derivative (`ID_LIKE=arch`).
    pub fn is_arch(&self) -> bool {
        self.id == "arch" || self.id_like.iter().any(|l| l == "arch")
    }

    /// How to name it in a message.
    pub fn describe(&self) -> String {
        if self.id.is_empty() {
            "an unknown OS (no /etc/os-release)".to_string()
        } else {
            format!("{} (ID={}, from /etc/os-release)", self.pretty_name, self.id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_and_its_derivatives_are_recognised_and_debian_is_named() {
        let debian = OsRelease::parse("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n");
        assert!(!debian.is_arch());
        assert_eq!(
            debian.describe(),
            "Debian GNU/Linux 12 (bookworm) (ID=debian, from /etc/os-release)"
        );
        assert!(OsRelease::parse("ID=arch\n").is_arch());
        assert!(OsRelease::parse("ID=endeavouros\nID_LIKE=arch\n").is_arch());
        assert!(!OsRelease::default().is_arch());
    }
}
