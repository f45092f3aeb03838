//! Parsing `flink.stream.initpos.timestamp`: unix seconds (`1459799926.480`) or a date in a
//! Java `SimpleDateFormat`-style pattern (default `yyyy-MM-dd'T'HH:mm:ss.SSSXXX`).
//!
//! Supported pattern letters: `yyyy`, `MM`, `dd`, `HH`, `mm`, `ss`, `SSS` (any count of `S` is
//! read as a fraction of a second), `X`/`XX`/`XXX` and `Z` (offset or `Z`), quoted literals
//! (`'T'`) and any other literal character.

/// Flink's default format of `flink.stream.initpos.timestamp`.
pub const DEFAULT_TIMESTAMP_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX";

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Field(char, usize),
    Literal(String),
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let mut lit = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                lit.push(chars[i]);
                i += 1;
            }
            if i >= chars.len() {
                return Err("unterminated quote".into());
            }
            i += 1;
            tokens.push(Token::Literal(lit));
        } else if c.is_ascii_alphabetic() {
            let mut n = 0;
            while i < chars.len() && chars[i] == c {
                n += 1;
                i += 1;
            }
            if !matches!(c, 'y' | 'M' | 'd' | 'H' | 'm' | 's' | 'S' | 'X' | 'Z') {
                return Err(format!("pattern letter '{c}' is not supported (use y, M, d, H, m, s, S, X, Z)"));
            }
            tokens.push(Token::Field(c, n));
        } else {
            tokens.push(Token::Literal(c.to_string()));
            i += 1;
        }
    }
    Ok(tokens)
}

fn take_digits(input: &str, max: usize) -> Option<(i64, usize, &str)> {
    let len = input.bytes().take(max).take_while(u8::is_ascii_digit).count();
    if len == 0 {
        return None;
    }
    let value = input[..len].parse().ok()?;
    Some((value, len, &input[len..]))
}

fn parse_offset(input: &str) -> Option<(i64, &str)> {
    if let Some(rest) = input.strip_prefix('Z') {
        return Some((0, rest));
    }
    let sign = match input.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let rest = &input[1..];
    let (hours, _, rest) = take_digits(rest, 2)?;
    let rest = rest.strip_prefix(':').unwrap_or(rest);
    let (minutes, rest) = match take_digits(rest, 2) {
        Some((m, _, r)) => (m, r),
        None => (0, rest),
    };
    Some((sign * (hours * 3600 + minutes * 60) * 1000, rest))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `value` with `pattern` into milliseconds since the Unix epoch (UTC when the pattern
/// has no offset).
pub(crate) fn parse_with_pattern(value: &str, pattern: &str) -> Result<i64, String> {
    let tokens = tokenize(pattern)?;
    let (mut year, mut month, mut day) = (1970, 1, 1);
    let (mut hour, mut minute, mut second, mut millis, mut offset) = (0, 0, 0, 0i64, 0i64);
    let mut rest = value.trim();
    for token in tokens {
        match token {
            Token::Literal(lit) => {
                rest = rest.strip_prefix(lit.as_str()).ok_or_else(|| format!("expected '{lit}' at '{rest}'"))?;
            }
            Token::Field('X' | 'Z', _) => {
                let (o, r) =
                    parse_offset(rest).ok_or_else(|| format!("expected an offset (Z or +hh:mm) at '{rest}'"))?;
                offset = o;
                rest = r;
            }
            Token::Field('S', _) => {
                let (digits, len, r) =
                    take_digits(rest, 9).ok_or_else(|| format!("expected fraction digits at '{rest}'"))?;
                millis =
                    if len >= 3 { digits / 10_i64.pow(len as u32 - 3) } else { digits * 10_i64.pow(3 - len as u32) };
                rest = r;
            }
            Token::Field(c, n) => {
                let max = if c == 'y' { n.max(4) } else { n.max(2) };
                let (v, _, r) =
                    take_digits(rest, max).ok_or_else(|| format!("expected digits for '{c}' at '{rest}'"))?;
                match c {
                    'y' => year = v,
                    'M' => month = v,
                    'd' => day = v,
                    'H' => hour = v,
                    'm' => minute = v,
                    _ => second = v,
                }
                rest = r;
            }
        }
    }
    if !rest.is_empty() {
        return Err(format!("unexpected trailing text '{rest}'"));
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err("a field is out of range".into());
    }
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis - offset)
}

/// Parses unix seconds with an optional fraction, e.g. `1459799926.480`.
pub(crate) fn parse_unix_seconds(value: &str) -> Option<i64> {
    let value = value.trim();
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let mut frac3: String = frac.chars().take(3).collect();
    while frac3.len() < 3 {
        frac3.push('0');
    }
    let millis: i64 = frac3.parse().ok()?;
    secs.checked_mul(1000)?.checked_add(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_with_a_fraction_are_read_as_milliseconds() {
        assert_eq!(parse_unix_seconds("1459799926.480"), Some(1_459_799_926_480));
        assert_eq!(parse_unix_seconds("1459799926"), Some(1_459_799_926_000));
        assert_eq!(parse_unix_seconds("12x"), None);
        assert_eq!(parse_unix_seconds("-5"), None);
    }

    #[test]
    fn the_default_pattern_reads_an_iso_date_with_offset() {
        let utc = parse_with_pattern("2016-04-04T19:58:46.480Z", DEFAULT_TIMESTAMP_FORMAT).unwrap();
        assert_eq!(utc, 1_459_799_926_480);
        let plus_two = parse_with_pattern("2016-04-04T21:58:46.480+02:00", DEFAULT_TIMESTAMP_FORMAT).unwrap();
        assert_eq!(plus_two, utc);
    }

    #[test]
    fn a_custom_pattern_without_offset_is_utc() {
        assert_eq!(parse_with_pattern("1970-01-02 00:00:01", "yyyy-MM-dd HH:mm:ss").unwrap(), 86_401_000);
    }

    #[test]
    fn text_not_matching_the_pattern_is_an_error() {
        assert!(parse_with_pattern("2016/04/04", DEFAULT_TIMESTAMP_FORMAT).is_err());
        assert!(parse_with_pattern("2016-13-04T00:00:00.000Z", DEFAULT_TIMESTAMP_FORMAT).is_err());
        assert!(tokenize("yyyy-MM-dd EEE").is_err());
    }
}
