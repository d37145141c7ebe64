//! Enums stored by name: a task's state, a run's status and mode, a task
//! event's kind. Each is written as the same text as before it was a type
//! (same columns, same JSON), and a name this version does not know, read
//! from the database, is an [`crate::Error::UnknownValue`], never a panic.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Result;

/// Defines a `Copy` enum stored by name: `ALL`, `NAMES`, `as_str`, `FromStr` (an
/// unknown name is an [`crate::UnknownName`]), `Display`, serde as the
/// name, and comparison with a name (`state == "queued"`, for tests and
/// callers that hold a name from outside).
macro_rules! stored_names {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Every stored name, in the order of [`Self::ALL`].
            pub const NAMES: &'static [&'static str] = &[$($text,)+];

            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownName;

            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::UnknownName {
                        what: $what,
                        value: s.to_string(),
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(
                &self,
                s: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
    };
}
pub(crate) use stored_names;

/// Reads the name in `column` (`table.column`, as the error names it) of
/// `row` as a `T`.
pub(crate) fn get_name<T>(row: &AnyRow, column: &'static str) -> Result<T>
where
    T: std::str::FromStr<Err = crate::UnknownName>,
{
    let field = column.rsplit('.').next().unwrap_or(column);
    let text: String = row.try_get(field)?;
    text.parse()
        .map_err(|e: crate::UnknownName| e.stored_in(column))
}

#[cfg(test)]
mod tests {
    use crate::runs::{RunMode, RunStatus};
    use crate::task_events::EventKind;
    use crate::tasks::{STATES, TaskState};
    use crate::threads::{MessageKind, ParticipantKind, ThreadState};

    #[test]
    fn every_name_reads_back_as_its_value() {
        fn round_trip<T>(all: &[T])
        where
            T: Copy + PartialEq + std::fmt::Debug + std::str::FromStr + serde::Serialize,
            T: AsRef<str> + serde::de::DeserializeOwned,
            <T as std::str::FromStr>::Err: std::fmt::Debug,
        {
            for v in all {
                assert_eq!(v.as_ref().parse::<T>().unwrap(), *v);
                // Serialized as the stored name, as the JSON of the API was.
                let json = serde_json::to_value(v).unwrap();
                assert_eq!(json, serde_json::Value::from(v.as_ref()));
                assert_eq!(serde_json::from_value::<T>(json).unwrap(), *v);
            }
        }
        round_trip(TaskState::ALL);
        round_trip(RunStatus::ALL);
        round_trip(RunMode::ALL);
        round_trip(EventKind::ALL);
        round_trip(ThreadState::ALL);
        round_trip(ParticipantKind::ALL);
        round_trip(MessageKind::ALL);
        round_trip(crate::settings::WorkspaceMode::ALL);
    }

    #[test]
    fn the_state_names_are_the_states_in_order() {
        let names: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, STATES);
        assert_eq!(TaskState::WaitingApproval.to_string(), "waiting_approval");
        let finished: Vec<&str> = TaskState::ALL
            .iter()
            .filter(|s| s.is_finished())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(finished, ["dead", "done", "cancelled"]);
    }

    #[test]
    fn an_unknown_name_is_an_error_that_names_it() {
        let err = "paused".parse::<TaskState>().unwrap_err();
        assert_eq!(err.to_string(), "unknown task state \"paused\"");
        // Names are exact: no case folding, no trimming.
        assert!("Queued".parse::<TaskState>().is_err());
        assert!(" queued".parse::<TaskState>().is_err());
        assert_eq!(
            "archived".parse::<RunStatus>().unwrap_err().to_string(),
            "unknown run status \"archived\""
        );
        let err = serde_json::from_value::<RunMode>(serde_json::json!("yolo")).unwrap_err();
        assert!(
            err.to_string().contains("unknown run mode \"yolo\""),
            "{err}"
        );
        assert!(serde_json::from_value::<RunMode>(serde_json::json!(1)).is_err());
    }

    #[test]
    fn a_value_compares_with_its_name() {
        assert_eq!(TaskState::Running, "running");
        assert_ne!(TaskState::Running, "queued");
        assert!(RunStatus::Interrupted == *"interrupted");
        assert!(RunStatus::Interrupted.is_terminal());
        assert!(!RunStatus::Running.is_terminal());
    }
}
