//! The name a certificate authenticates.

use rustls_pki_types::CertificateDer;

/// The principal a verified certificate stands for: its subject's common name (CN), or, for a
/// subject without one, the whole subject as RFC 4514 text (`O=Shop,OU=Payments`). `None` when
/// the certificate cannot be parsed or its subject is empty.
pub fn principal_of(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let subject = parsed.subject();
    if let Some(cn) = subject.iter_common_name().next() {
        return cn.as_str().ok().filter(|cn| !cn.is_empty()).map(str::to_string);
    }
    let text = subject.to_string();
    (!text.is_empty()).then_some(text)
}

/// The prefix of a broker certificate's common name: broker 3 presents `CN=broker-3`.
pub const BROKER_NAME_PREFIX: &str = "broker-";

/// The node id a broker's principal names (`broker-3` → 3), if it is one.
pub fn broker_node_id(principal: &str) -> Option<u64> {
    let id: u64 = principal.strip_prefix(BROKER_NAME_PREFIX)?.parse().ok()?;
    (id >= 1 && principal == format!("{BROKER_NAME_PREFIX}{id}")).then_some(id)
}

/// Which broker the peer of an inter-broker connection is: `Ok(None)` over plaintext (no
/// certificates to tell), `Ok(Some(id))` for a verified certificate of `broker-<id>`, and an
/// error naming what was presented otherwise.
pub fn peer_broker(peer: Option<&crate::PeerInfo>) -> Result<Option<u64>, String> {
    let Some(peer) = peer.filter(|p| p.tls) else { return Ok(None) };
    let leaf = peer.certificates.as_ref().and_then(|c| c.first()).ok_or("no client certificate")?;
    let principal = principal_of(leaf).ok_or("a certificate without a subject")?;
    broker_node_id(&principal)
        .map(Some)
        .ok_or_else(|| format!("the certificate of {principal:?} is not a broker's ({BROKER_NAME_PREFIX}<node id>)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_names() {
        assert_eq!(broker_node_id("broker-3"), Some(3));
        for other in ["broker-0", "broker-", "broker-03", "broker-3x", "Broker-3", "alice", "broker--1"] {
            assert_eq!(broker_node_id(other), None, "{other}");
        }
        assert_eq!(peer_broker(None), Ok(None));
        let plain = crate::PeerInfo::default();
        assert_eq!(peer_broker(Some(&plain)), Ok(None));
        let no_cert = crate::PeerInfo { tls: true, ..Default::default() };
        assert!(peer_broker(Some(&no_cert)).is_err());
    }
}
