//! `wire_enum!`: the wire's fieldless enums, each sent as one word, with
//! the word written once per value.

/// Declares a `Copy` enum whose values go over the wire as the given words
/// (`Variant = "word",`), with `ALL` (in declaration order), `as_str`,
/// `parse` and `Display` from the same words. Doc comments, further derives
/// (such as `Default`) and variant attributes (`#[default]`,
/// `#[serde(other)]`) pass through.
// The words are `tt`, not `literal`: a `literal` fragment reaches derive
// macros wrapped in an invisible group, which utoipa's `ToSchema` does not
// read through, so the OpenAPI document named the Rust variants instead of
// the wire words (schemathesis found it).
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $word:tt,
            )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            serde::Serialize,
            serde::Deserialize,
            utoipa::ToSchema,
        )]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[serde(rename = $word)]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($word),+].len()] = [$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The value with this wire name.
            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.into_iter().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
