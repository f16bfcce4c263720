//! The value syntaxes a stack file borrows from elsewhere: Kubernetes quantities for memory
//! (`128Mi`, `1Gi`, `512M`) and CPU (`100m`, `0.5`, `1`), Go durations (`15m`, `1h30m`, `90s`)
//! and Go booleans (`true`, `1`, `F`), each turned into what a Fjord spec holds. Errors say
//! what was wrong with the text and what to write; the caller names the key.

use std::time::Duration;

const MIB: u128 = 1 << 20;

/// A memory amount in whole MiB, rounded up (`512M` is 488.3 MiB: 489).
pub(crate) fn memory_mib(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let (number, suffix) = split_number(text).ok_or_else(|| memory_help(text))?;
    let bytes_per_unit: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "m" => {
            let number = &text[..text.len() - 1];
            return Err(format!(
                "{text:?}: `m` means thousandths of a byte in Kubernetes quantities; write {number}Mi or {number}M"
            ));
        }
        _ => return Err(memory_help(text)),
    };
    let (mantissa, scale) = number;
    let bytes_scaled = mantissa
        .checked_mul(bytes_per_unit)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    let divisor = scale * MIB;
    let mib = bytes_scaled.div_ceil(divisor);
    if mib == 0 {
        return Err(format!("{text:?} is no memory at all"));
    }
    u32::try_from(mib).map_err(|_| format!("{text:?} is too large"))
}

fn memory_help(text: &str) -> String {
    format!("{text:?} is not a memory amount; write for example 128Mi, 1Gi or 512M")
}

/// A CPU amount in millicores: `100m`, or cores (`0.5`, `1`, `2.25`).
pub(crate) fn cpu_millis(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let help = || format!("{text:?} is not a CPU amount; write for example 100m, 0.5 or 1 (cores)");
    let ((mantissa, scale), suffix) = split_number(text).ok_or_else(help)?;
    let millis = match suffix {
        "m" if scale == 1 => mantissa,
        "m" => {
            return Err(format!(
                "{text:?}: a millicore is the smallest amount; write a whole number of m"
            ))
        }
        "" => {
            let thousandths = mantissa
                .checked_mul(1_000)
                .ok_or_else(|| format!("{text:?} is too large"))?;
            if thousandths % scale != 0 {
                return Err(format!("{text:?} is finer than a millicore (0.001)"));
            }
            thousandths / scale
        }
        _ => return Err(help()),
    };
    if millis == 0 {
        return Err(format!("{text:?} is no CPU at all"));
    }
    u32::try_from(millis).map_err(|_| format!("{text:?} is too large"))
}

/// A decimal number at the start of `text` as (digits without the point, 10^decimals), and the
/// rest. `None` when there is no number or it has too many digits to be exact.
fn split_number(text: &str) -> Option<((u128, u128), &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') || whole.len() + fraction.len() > 24 {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = digits.parse().ok()?;
    Some(((mantissa, 10u128.pow(fraction.len() as u32)), suffix))
}

/// A Go duration (`time.ParseDuration`): numbers with units `ns`, `us` (`µs`), `ms`, `s`, `m`,
/// `h`, one after another (`1h30m`), fractions allowed (`1.5h`).
pub(crate) fn go_duration(text: &str) -> Result<Duration, String> {
    let original = text;
    let help = || format!("{original:?} is not a duration; write for example 15m, 90s or 1h30m");
    let mut rest = original.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(help());
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let ((mantissa, scale), after) = split_number(rest).ok_or_else(help)?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos_per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "{original:?} has a number without a unit; write for example 15m or 90s"
                ))
            }
            other => {
                return Err(format!(
                    "{original:?} has unknown unit {other:?}; use ns, us, ms, s, m or h"
                ))
            }
        };
        let part = mantissa.checked_mul(nanos_per_unit).ok_or_else(help)? / scale;
        nanos = nanos.checked_add(part).ok_or_else(help)?;
        rest = next;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| format!("{original:?} is too long"))?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// A Go boolean (`strconv.ParseBool`): 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
pub(crate) fn go_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(format!("{other:?} is not a boolean; write true or false")),
    }
}

/// A whole number of instances or requests.
pub(crate) fn whole_number(text: &str) -> Result<u32, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{:?} is not a whole number", text.trim()))
}
