//! `towerpost passwd add|remove|list`: the SASL password file
//! (`smtpd_sasl_password_file`), with the password read from the terminal
//! or standard input, never from the command line.

use std::process::ExitCode;

use towerpost::sysexits::{EX_CONFIG, EX_NOUSER, EX_SOFTWARE, EX_USAGE};
use towerpost_config::Config;

use crate::PasswdCmd;

/// `towerpost passwd add|remove|list`.
pub(crate) fn passwd_command(
    config: &Config,
    file: Option<&std::path::Path>,
    action: &PasswdCmd,
) -> ExitCode {
    use towerpost::sasl::PasswordFile;
    let Some(path) = file.or(config.smtpd_sasl_password_file.as_deref()) else {
        eprintln!(
            "towerpost: fatal: no password file: set smtpd_sasl_password_file or give --file"
        );
        return ExitCode::from(EX_CONFIG);
    };
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("towerpost: fatal: {e}");
        ExitCode::from(EX_SOFTWARE)
    };
    let mut db = match PasswordFile::load(path) {
        Ok(db) => db,
        Err(e) => return fail(&e),
    };
    match action {
        PasswdCmd::List => {
            for user in db.users() {
                println!("{user}");
            }
            return ExitCode::SUCCESS;
        }
        PasswdCmd::Remove { user } => {
            if !db.remove(user) {
                eprintln!("towerpost: passwd: no user {user} in {}", path.display());
                return ExitCode::from(EX_NOUSER);
            }
            println!("towerpost: removed {user}");
        }
        PasswdCmd::Add {
            user,
            password_stdin,
        } => {
            let password = match read_password(*password_stdin) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("towerpost: passwd: {e}");
                    return ExitCode::from(EX_USAGE);
                }
            };
            match db.set(user, &password) {
                Ok(true) => println!("towerpost: changed the password of {user}"),
                Ok(false) => println!("towerpost: added {user}"),
                Err(e) => return fail(&e),
            }
        }
    }
    match db.save() {
        // The server notices the new file at the next AUTH.
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// A new password: from standard input's first line, or typed twice at
/// the terminal without echo.
fn read_password(from_stdin: bool) -> Result<String, String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ").map_err(|e| {
            format!("cannot read the password from the terminal ({e}); use --password-stdin")
        })?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".into());
        }
        first
    };
    if password.is_empty() {
        return Err("empty password".into());
    }
    Ok(password)
}
