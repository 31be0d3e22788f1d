//! The wire error: `org.cairn.Error.<Variant>` with its message. hostd maps its typed
//! errors to it (hostd's `api/error.rs`); a client reads the name to decide its exit code:
//! cairnctl exits 2 for the caller's mistakes ([`HostError::is_bad_input`]) and 1 for
//! failures.

/// Every way a call can fail, as the client sees it: `org.cairn.Error.<Variant>` with the
/// text as the error message. Every variant carries its message (a D-Bus error without one
/// shows as "Input/output error" in busctl).
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.cairn.Error")]
pub enum HostError {
    /// The bus itself failed (client side: unreachable broker, timeout, no such name).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// A refused request: a document (every path-level message, one per line) or an
    /// argument.
    Invalid(String),
    /// A generation, board, volume, guest, port or job that does not exist (or a volume
    /// that is not mounted, so as good as absent to the request).
    NotFound(String),
    /// The store on the config partition failed; the message is the whole error chain.
    Storage(String),
    /// The box could not be observed.
    System(String),
    /// An action on the box failed; the message says what was rolled back.
    ApplyFailed(String),
    /// Cancelled on request; the message says what was rolled back.
    Cancelled(String),
    /// Another operation of the same kind is running.
    Busy(String),
    /// A guest start refused by admission (memory, vCPUs, reserved threads): the sum.
    Refused(String),
    /// A guest is in a state that does not allow the request (stopping a stopped guest,
    /// deleting a running one), or a document would drop a running guest.
    WrongState(String),
}

impl HostError {
    /// Whether the caller asked for something wrong (as opposed to something failing).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Invalid(_)
            | Self::NotFound(_)
            | Self::Busy(_)
            | Self::Refused(_)
            | Self::WrongState(_) => true,
            Self::ZBus(_)
            | Self::Storage(_)
            | Self::System(_)
            | Self::ApplyFailed(_)
            | Self::Cancelled(_) => false,
        }
    }

    /// The text for a person: the message without the error name.
    pub fn message(&self) -> String {
        match self {
            Self::ZBus(error) => error.to_string(),
            Self::Invalid(text)
            | Self::NotFound(text)
            | Self::Storage(text)
            | Self::System(text)
            | Self::ApplyFailed(text)
            | Self::Cancelled(text)
            | Self::Busy(text)
            | Self::Refused(text)
            | Self::WrongState(text) => text.clone(),
        }
    }

    /// Rebuilds the error a job reported from its D-Bus name and message (client side).
    /// The name comes off the wire: one this client does not know (a newer hostd's) is a
    /// failure.
    pub fn from_job(error_name: &str, message: String) -> Self {
        match error_name.rsplit('.').next().unwrap_or_default() {
            "Invalid" => Self::Invalid(message),
            "NotFound" => Self::NotFound(message),
            "Storage" => Self::Storage(message),
            "System" => Self::System(message),
            "Cancelled" => Self::Cancelled(message),
            "Busy" => Self::Busy(message),
            "Refused" => Self::Refused(message),
            "WrongState" => Self::WrongState(message),
            _ => Self::ApplyFailed(message),
        }
    }

    /// A request whose blocking thread ended without an answer (it panicked).
    pub fn unfinished(error: &impl std::fmt::Display) -> Self {
        Self::System(format!("The request stopped unfinished: {error}"))
    }

    /// The D-Bus name, `org.cairn.Error.<Variant>`.
    pub fn name(&self) -> String {
        zbus::DBusError::name(self).to_string()
    }
}
