//! Numbers as people read them in replies.

/// `12345` → `12 345` (thin groups of three, as the replies and logs show counts).
pub fn group_digits(number: usize) -> String {
    let digits = number.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped_by_three() {
        assert_eq!(group_digits(1_234_567), "1 234 567");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(0), "0");
    }
}
