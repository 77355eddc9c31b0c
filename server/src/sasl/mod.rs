//! SMTP AUTH (RFC 4954) on the server side: the password file, the
//! authenticator that checks it, and the SASL mechanisms PLAIN and LOGIN.

mod authenticator;
mod mechanism;
mod password_file;

pub use authenticator::{AuthError, Authenticator, PasswordDb, SharedAuthenticator};
pub use mechanism::{
    Mechanism, MechanismError, decode_base64, decode_login_field, decode_plain, encode_base64,
};
pub use password_file::{PasswordFile, PasswordFileError, hash_password};
