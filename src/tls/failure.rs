//! Why a TLS connection failed, as JavaScript sees it: a negative number in the `code` argument
//! of `onClose` / `onConnectError` and a string `error.code`.

use tokio_rustls::rustls::{AlertDescription, CertificateError, Error};

/// Failures are numbered down from here, clear of errno values (positive) and of libuv's
/// negative codes (above -4096), so one `code` argument can carry any of them.
const FIRST_CODE: i32 = -4200;

/// A TLS failure of one connection. The discriminants are offsets from [`FIRST_CODE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The peer's certificate chain does not lead to a trusted root.
    UnknownIssuer = 1,
    /// The certificate is not valid for the name (or address) connected to.
    NameMismatch,
    Expired,
    NotYetValid,
    Revoked,
    BadCertificateSignature,
    /// Any other reason the certificate was refused (bad encoding, wrong key usage, ...).
    InvalidCertificate,
    /// The server requires a client certificate and none was sent.
    CertificateRequired,
    /// The peer sent a fatal alert; the variants name the common ones.
    AlertHandshakeFailure,
    AlertBadCertificate,
    AlertUnknownCa,
    AlertCertificateExpired,
    AlertCertificateRequired,
    AlertProtocolVersion,
    AlertNoApplicationProtocol,
    AlertDecryptError,
    AlertUnrecognizedName,
    AlertBadRecordMac,
    Alert,
    /// The peer sent something that is not TLS, or TLS out of order.
    Protocol,
    /// A record failed authentication (corrupted or forged).
    Decrypt,
    /// No protocol version or cipher suite in common.
    HandshakeFailure,
    /// ALPN: none of our protocols is acceptable to the peer.
    NoApplicationProtocol,
    /// The handshake did not complete in time.
    HandshakeTimeout,
    Internal,
}

const ALL: [TlsFailure; 25] = {
    use TlsFailure::*;
    [
        UnknownIssuer,
        NameMismatch,
        Expired,
        NotYetValid,
        Revoked,
        BadCertificateSignature,
        InvalidCertificate,
        CertificateRequired,
        AlertHandshakeFailure,
        AlertBadCertificate,
        AlertUnknownCa,
        AlertCertificateExpired,
        AlertCertificateRequired,
        AlertProtocolVersion,
        AlertNoApplicationProtocol,
        AlertDecryptError,
        AlertUnrecognizedName,
        AlertBadRecordMac,
        Alert,
        Protocol,
        Decrypt,
        HandshakeFailure,
        NoApplicationProtocol,
        HandshakeTimeout,
        Internal,
    ]
};

impl TlsFailure {
    /// The number JavaScript receives as `code`.
    pub fn code(self) -> i32 {
        FIRST_CODE - self as i32
    }

    /// The failure a `code` stands for, if it is a TLS one.
    pub fn from_code(code: i32) -> Option<TlsFailure> {
        ALL.into_iter().find(|failure| failure.code() == code)
    }

    /// The string `error.code`.
    pub fn name(self) -> &'static str {
        use TlsFailure::*;
        match self {
            UnknownIssuer => "ERR_TLS_CERT_UNKNOWN_ISSUER",
            NameMismatch => "ERR_TLS_CERT_ALTNAME_INVALID",
            Expired => "ERR_TLS_CERT_EXPIRED",
            NotYetValid => "ERR_TLS_CERT_NOT_YET_VALID",
            Revoked => "ERR_TLS_CERT_REVOKED",
            BadCertificateSignature => "ERR_TLS_CERT_SIGNATURE_INVALID",
            InvalidCertificate => "ERR_TLS_CERT_INVALID",
            CertificateRequired => "ERR_TLS_CERT_REQUIRED",
            AlertHandshakeFailure => "ERR_TLS_ALERT_HANDSHAKE_FAILURE",
            AlertBadCertificate => "ERR_TLS_ALERT_BAD_CERTIFICATE",
            AlertUnknownCa => "ERR_TLS_ALERT_UNKNOWN_CA",
            AlertCertificateExpired => "ERR_TLS_ALERT_CERTIFICATE_EXPIRED",
            AlertCertificateRequired => "ERR_TLS_ALERT_CERTIFICATE_REQUIRED",
            AlertProtocolVersion => "ERR_TLS_ALERT_PROTOCOL_VERSION",
            AlertNoApplicationProtocol => "ERR_TLS_ALERT_NO_APPLICATION_PROTOCOL",
            AlertDecryptError => "ERR_TLS_ALERT_DECRYPT_ERROR",
            AlertUnrecognizedName => "ERR_TLS_ALERT_UNRECOGNIZED_NAME",
            AlertBadRecordMac => "ERR_TLS_ALERT_BAD_RECORD_MAC",
            Alert => "ERR_TLS_ALERT",
            Protocol => "ERR_TLS_PROTOCOL",
            Decrypt => "ERR_TLS_DECRYPT",
            HandshakeFailure => "ERR_TLS_HANDSHAKE_FAILURE",
            NoApplicationProtocol => "ERR_TLS_NO_APPLICATION_PROTOCOL",
            HandshakeTimeout => "ERR_TLS_HANDSHAKE_TIMEOUT",
            Internal => "ERR_TLS_INTERNAL",
        }
    }

    /// A sentence for `error.message`.
    pub fn message(self) -> &'static str {
        use TlsFailure::*;
        match self {
            UnknownIssuer => "the peer's certificate is not issued by a trusted authority",
            NameMismatch => "the peer's certificate is not valid for the name connected to",
            Expired => "the peer's certificate has expired",
            NotYetValid => "the peer's certificate is not yet valid",
            Revoked => "the peer's certificate is revoked",
            BadCertificateSignature => "the peer's certificate has an invalid signature",
            InvalidCertificate => "the peer's certificate is invalid",
            CertificateRequired => "the peer sent no certificate, and one is required",
            AlertHandshakeFailure => "the peer aborted the handshake (handshake_failure)",
            AlertBadCertificate => "the peer refused our certificate (bad_certificate)",
            AlertUnknownCa => "the peer does not trust our certificate's issuer (unknown_ca)",
            AlertCertificateExpired => "the peer refused our expired certificate (certificate_expired)",
            AlertCertificateRequired => "the peer requires a certificate from us (certificate_required)",
            AlertProtocolVersion => "the peer supports none of our TLS versions (protocol_version)",
            AlertNoApplicationProtocol => "the peer accepts none of our ALPN protocols",
            AlertDecryptError => "the peer could not verify the handshake (decrypt_error)",
            AlertUnrecognizedName => "the peer has no certificate for the name asked (unrecognized_name)",
            AlertBadRecordMac => "the peer received a corrupted record from us (bad_record_mac)",
            Alert => "the peer sent a fatal TLS alert",
            Protocol => "the peer broke the TLS protocol (not TLS, or a malformed or unexpected message)",
            Decrypt => "a TLS record failed authentication (corrupted or forged data)",
            HandshakeFailure => "no TLS version or cipher suite in common with the peer",
            NoApplicationProtocol => "none of the peer's ALPN protocols is acceptable",
            HandshakeTimeout => "the TLS handshake did not complete in time",
            Internal => "internal TLS error",
        }
    }
}

impl From<&Error> for TlsFailure {
    fn from(err: &Error) -> Self {
        use TlsFailure::*;
        match err {
            Error::InvalidCertificate(err) => match err {
                CertificateError::UnknownIssuer => UnknownIssuer,
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    NameMismatch
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => Expired,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => NotYetValid,
                CertificateError::Revoked => Revoked,
                CertificateError::BadSignature => BadCertificateSignature,
                _ => InvalidCertificate,
            },
            Error::NoCertificatesPresented => CertificateRequired,
            Error::AlertReceived(alert) => match alert {
                AlertDescription::HandshakeFailure => AlertHandshakeFailure,
                AlertDescription::BadCertificate => AlertBadCertificate,
                AlertDescription::UnknownCA => AlertUnknownCa,
                AlertDescription::CertificateExpired => AlertCertificateExpired,
                AlertDescription::CertificateRequired => AlertCertificateRequired,
                AlertDescription::ProtocolVersion => AlertProtocolVersion,
                AlertDescription::NoApplicationProtocol => AlertNoApplicationProtocol,
                AlertDescription::DecryptError => AlertDecryptError,
                AlertDescription::UnrecognisedName => AlertUnrecognizedName,
                AlertDescription::BadRecordMac => AlertBadRecordMac,
                _ => Alert,
            },
            Error::DecryptError => Decrypt,
            Error::PeerIncompatible(_) => HandshakeFailure,
            Error::NoApplicationProtocol => NoApplicationProtocol,
            Error::InvalidMessage(_)
            | Error::InappropriateMessage { .. }
            | Error::InappropriateHandshakeMessage { .. }
            | Error::PeerMisbehaved(_)
            | Error::PeerSentOversizedRecord
            | Error::UnsupportedNameType
            | Error::InvalidEncryptedClientHello(_) => Protocol,
            _ => Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_negative_and_round_trip() {
        let mut codes: Vec<i32> = ALL.iter().map(|failure| failure.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ALL.len());
        for failure in ALL {
            assert!(failure.code() < -4096, "{failure:?} collides with libuv codes");
            assert_eq!(TlsFailure::from_code(failure.code()), Some(failure));
            assert!(failure.name().starts_with("ERR_TLS_"));
        }
        assert_eq!(TlsFailure::from_code(-104), None);
    }
}
