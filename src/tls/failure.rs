//! Why a TLS connection failed, as JavaScript sees it: a negative number in the `code` argument
//! of `onClose` / `onConnectError` and a string `error.code`.

use tokio_rustls::rustls::{AlertDescription, CertificateError, Error};

/// Failure codes count down from just below this, clear of errno values (positive) and of
/// libuv's negative codes (above -4096), so one `code` argument can carry any of them.
const FIRST_CODE: i32 = -4200;

/// Declares the failures with their `error.code` and message, and the list of all of them.
macro_rules! tls_failures {
    ($($(#[$doc:meta])* $variant:ident => $name:literal, $message:literal;)+) => {
        /// A TLS failure of one connection; [`TlsFailure::code`] numbers them from [`FIRST_CODE`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum TlsFailure {
            $($(#[$doc])* $variant,)+
        }

        const ALL: &[TlsFailure] = &[$(TlsFailure::$variant,)+];

        impl TlsFailure {
            /// The string `error.code`.
            pub fn name(self) -> &'static str {
                match self {
                    $(TlsFailure::$variant => $name,)+
                }
            }

            /// A sentence for `error.message`.
            pub fn message(self) -> &'static str {
                match self {
                    $(TlsFailure::$variant => $message,)+
                }
            }
        }
    };
}

tls_failures! {
    /// The peer's certificate chain does not lead to a trusted root.
    UnknownIssuer => "ERR_TLS_CERT_UNKNOWN_ISSUER", "the peer's certificate is not issued by a trusted authority";
    /// The certificate is not valid for the name (or address) connected to.
    NameMismatch => "ERR_TLS_CERT_ALTNAME_INVALID", "the peer's certificate is not valid for the name connected to";
    Expired => "ERR_TLS_CERT_EXPIRED", "the peer's certificate has expired";
    NotYetValid => "ERR_TLS_CERT_NOT_YET_VALID", "the peer's certificate is not yet valid";
    Revoked => "ERR_TLS_CERT_REVOKED", "the peer's certificate is revoked";
    BadCertificateSignature => "ERR_TLS_CERT_SIGNATURE_INVALID", "the peer's certificate has an invalid signature";
    /// Any other reason the certificate was refused (bad encoding, wrong key usage, ...).
    InvalidCertificate => "ERR_TLS_CERT_INVALID", "the peer's certificate is invalid";
    /// The server requires a client certificate and none was sent.
    CertificateRequired => "ERR_TLS_CERT_REQUIRED", "the peer sent no certificate, and one is required";
    /// The peer sent a fatal alert; the variants name the common ones.
    AlertHandshakeFailure => "ERR_TLS_ALERT_HANDSHAKE_FAILURE", "the peer aborted the handshake (handshake_failure)";
    AlertBadCertificate => "ERR_TLS_ALERT_BAD_CERTIFICATE", "the peer refused our certificate (bad_certificate)";
    AlertUnknownCa => "ERR_TLS_ALERT_UNKNOWN_CA", "the peer does not trust our certificate's issuer (unknown_ca)";
    AlertCertificateExpired => "ERR_TLS_ALERT_CERTIFICATE_EXPIRED",
        "the peer refused our expired certificate (certificate_expired)";
    AlertCertificateRequired => "ERR_TLS_ALERT_CERTIFICATE_REQUIRED",
        "the peer requires a certificate from us (certificate_required)";
    AlertProtocolVersion => "ERR_TLS_ALERT_PROTOCOL_VERSION",
        "the peer supports none of our TLS versions (protocol_version)";
    AlertNoApplicationProtocol => "ERR_TLS_ALERT_NO_APPLICATION_PROTOCOL",
        "the peer accepts none of our ALPN protocols";
    AlertDecryptError => "ERR_TLS_ALERT_DECRYPT_ERROR", "the peer could not verify the handshake (decrypt_error)";
    AlertUnrecognizedName => "ERR_TLS_ALERT_UNRECOGNIZED_NAME",
        "the peer has no certificate for the name asked (unrecognized_name)";
    AlertBadRecordMac => "ERR_TLS_ALERT_BAD_RECORD_MAC",
        "the peer received a corrupted record from us (bad_record_mac)";
    Alert => "ERR_TLS_ALERT", "the peer sent a fatal TLS alert";
    /// The peer sent something that is not TLS, or TLS out of order.
    Protocol => "ERR_TLS_PROTOCOL",
        "the peer broke the TLS protocol (not TLS, or a malformed or unexpected message)";
    /// A record failed authentication (corrupted or forged).
    Decrypt => "ERR_TLS_DECRYPT", "a TLS record failed authentication (corrupted or forged data)";
    /// No protocol version or cipher suite in common.
    HandshakeFailure => "ERR_TLS_HANDSHAKE_FAILURE", "no TLS version or cipher suite in common with the peer";
    /// ALPN: none of our protocols is acceptable to the peer.
    NoApplicationProtocol => "ERR_TLS_NO_APPLICATION_PROTOCOL", "none of the peer's ALPN protocols is acceptable";
    /// The handshake did not complete in time.
    HandshakeTimeout => "ERR_TLS_HANDSHAKE_TIMEOUT", "the TLS handshake did not complete in time";
    Internal => "ERR_TLS_INTERNAL", "internal TLS error";
}

impl TlsFailure {
    /// The number JavaScript receives as `code`.
    pub fn code(self) -> i32 {
        FIRST_CODE - 1 - self as i32
    }

    /// The failure a `code` stands for, if it is a TLS one.
    pub fn from_code(code: i32) -> Option<TlsFailure> {
        ALL.iter().copied().find(|failure| failure.code() == code)
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
        for &failure in ALL {
            assert!(failure.code() < -4096, "{failure:?} collides with libuv codes");
            assert_eq!(TlsFailure::from_code(failure.code()), Some(failure));
            assert!(failure.name().starts_with("ERR_TLS_"));
        }
        assert_eq!(TlsFailure::from_code(-104), None);
    }
}
