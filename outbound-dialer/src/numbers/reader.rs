//! The streaming reader: bounded lines, format detection, per-line parsing.

use std::collections::BTreeMap;
use std::io::{self, BufRead};

use super::{
    InvalidLine, Line, LineError, MAX_LINE_BYTES, NumberEntry, excerpt, is_variable_name, normalize,
};

/// How the input is laid out, detected from its first line that is not blank or a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// One number per line.
    Plain,
    /// CSV with a header.
    Csv {
        /// `b','` or `b';'`.
        delimiter: u8,
        /// The header's column names, trimmed, in order.
        columns: Vec<String>,
        /// Index in `columns` of the `number` (or else `phone`) column.
        number_column: usize,
    },
}

/// Why the input cannot be read as a list of numbers at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Reading failed.
    #[error("cannot read the input")]
    Read(#[source] io::Error),
    /// Only blank and comment lines.
    #[error("has no numbers (it is empty or has only blank and comment lines)")]
    Empty,
    /// A header line without a number column.
    #[error(
        "starts with a CSV header that has no number or phone column (its columns: {}); name the column that holds the numbers `number` or `phone`",
        .columns.join(", ")
    )]
    NoNumberColumn {
        /// The columns it has.
        columns: Vec<String>,
    },
    /// A header column that cannot be a channel variable name.
    #[error(
        "has a CSV column {column:?} that cannot be a channel variable name: use letters, digits and '_', not starting with a digit"
    )]
    BadColumn {
        /// The column's name.
        column: String,
    },
    /// Two header columns with the same name (ignoring case).
    #[error("has the CSV column {column:?} twice")]
    DuplicateColumn {
        /// The column's name.
        column: String,
    },
}

/// What [`Lines::next`] left in its buffer.
enum Raw {
    /// The whole line, without its end (`\n` or `\r\n`).
    Whole,
    /// The line's first [`MAX_LINE_BYTES`]; the rest was read and dropped.
    TooLong(u64),
}

/// Physical lines of at most [`MAX_LINE_BYTES`] kept bytes, read in the `BufRead`'s
/// chunks so that a line of any length costs no more memory than the limit.
struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    number: u64,
}

impl<R: BufRead> Lines<R> {
    fn next(&mut self) -> io::Result<Option<Raw>> {
        self.buf.clear();
        let mut len = 0u64;
        let mut last = None;
        let mut seen = false;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if chunk.is_empty() {
                if !seen {
                    return Ok(None);
                }
                break;
            }
            seen = true;
            let newline = chunk.iter().position(|&byte| byte == b'\n');
            let body = newline.unwrap_or(chunk.len());
            let room = MAX_LINE_BYTES - self.buf.len().min(MAX_LINE_BYTES);
            self.buf.extend_from_slice(&chunk[..body.min(room)]);
            if body > 0 {
                last = Some(chunk[body - 1]);
            }
            len += body as u64;
            self.input.consume(body + usize::from(newline.is_some()));
            if newline.is_some() {
                break;
            }
        }
        self.number += 1;
        if last == Some(b'\r') {
            len -= 1;
            if self.buf.len() as u64 > len {
                self.buf.pop();
            }
        }
        if self.number == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
            self.buf.drain(..3);
            len -= 3;
        }
        Ok(Some(if len > MAX_LINE_BYTES as u64 {
            Raw::TooLong(len)
        } else {
            Raw::Whole
        }))
    }
}

/// Whether a line is skipped without a report: blank, or a `#` comment.
fn is_skipped(bytes: &[u8]) -> bool {
    match bytes.iter().find(|byte| !byte.is_ascii_whitespace()) {
        None => true,
        Some(first) => *first == b'#',
    }
}

/// Reads numbers from a plain list or a CSV file, one line at a time.
///
/// Yields a [`Line`] for every line that is not blank or a comment, in input order; an
/// I/O error ends the iteration.
pub struct NumberReader<R> {
    lines: Lines<R>,
    format: Format,
    fields: Fields,
    first: Option<Line>,
    entries: u64,
    invalid: u64,
    failed: bool,
}

impl<R: BufRead> NumberReader<R> {
    /// Reads up to the first line that is not blank or a comment and detects the format:
    /// a line with a `number` or `phone` field (case-insensitive, `,` or `;` separated)
    /// is a CSV header; any other line is the first line of a plain list.
    ///
    /// # Errors
    /// An input with no such line, a header without a number column (a first line with
    /// separators and no digit is taken for one), a header column that cannot be a
    /// channel variable name, and read errors.
    pub fn new(input: R) -> Result<NumberReader<R>, HeaderError> {
        let mut reader = NumberReader {
            lines: Lines {
                input,
                buf: Vec::new(),
                number: 0,
            },
            format: Format::Plain,
            fields: Fields::new(b','),
            first: None,
            entries: 0,
            invalid: 0,
            failed: false,
        };
        loop {
            match reader.lines.next().map_err(HeaderError::Read)? {
                None => return Err(HeaderError::Empty),
                Some(Raw::Whole) if is_skipped(&reader.lines.buf) => {}
                Some(Raw::Whole) => break,
                Some(Raw::TooLong(len)) => {
                    reader.first = Some(reader.invalid_line(LineError::TooLong {
                        max: MAX_LINE_BYTES,
                        len,
                    }));
                    return Ok(reader);
                }
            }
        }
        let text = std::str::from_utf8(&reader.lines.buf).ok();
        if let Some(format) = text.map(header).transpose()?.flatten() {
            if let Format::Csv { delimiter, .. } = &format {
                reader.fields = Fields::new(*delimiter);
            }
            reader.format = format;
            return Ok(reader);
        }
        reader.first = Some(reader.parse_line());
        Ok(reader)
    }

    /// The detected format.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// Valid numbers yielded so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Invalid lines yielded so far.
    pub fn invalid(&self) -> u64 {
        self.invalid
    }

    fn invalid_line(&self, reason: LineError) -> Line {
        Line::Invalid(InvalidLine {
            line: self.lines.number,
            reason,
            excerpt: excerpt(&self.lines.buf),
        })
    }

    /// Parses the whole line in the buffer.
    fn parse_line(&mut self) -> Line {
        let line = self.lines.number;
        let parsed = match std::str::from_utf8(&self.lines.buf) {
            Err(_) => Err(LineError::NotText),
            Ok(text) => match &self.format {
                Format::Plain => normalize(text)
                    .map(|number| NumberEntry {
                        line,
                        number,
                        data: BTreeMap::new(),
                    })
                    .map_err(LineError::from),
                Format::Csv {
                    columns,
                    number_column,
                    ..
                } => parse_csv(&mut self.fields, text, columns, *number_column)
                    .map(|(number, data)| NumberEntry { line, number, data }),
            },
        };
        match parsed {
            Ok(entry) => Line::Entry(entry),
            Err(reason) => self.invalid_line(reason),
        }
    }

    fn count(&mut self, line: Line) -> Line {
        match &line {
            Line::Entry(_) => self.entries += 1,
            Line::Invalid(_) => self.invalid += 1,
        }
        line
    }
}

impl<R: BufRead> Iterator for NumberReader<R> {
    type Item = io::Result<Line>;

    fn next(&mut self) -> Option<io::Result<Line>> {
        if let Some(first) = self.first.take() {
            return Some(Ok(self.count(first)));
        }
        if self.failed {
            return None;
        }
        loop {
            let line = match self.lines.next() {
                Ok(None) => return None,
                Err(error) => {
                    self.failed = true;
                    return Some(Err(error));
                }
                Ok(Some(Raw::Whole)) if is_skipped(&self.lines.buf) => continue,
                Ok(Some(Raw::Whole)) => self.parse_line(),
                Ok(Some(Raw::TooLong(len))) => {
                    // A comment stays a comment at any length; a long number line is
                    // reported, quoting its start.
                    if is_skipped(&self.lines.buf) {
                        continue;
                    }
                    self.invalid_line(LineError::TooLong {
                        max: MAX_LINE_BYTES,
                        len,
                    })
                }
            };
            return Some(Ok(self.count(line)));
        }
    }
}

/// The header's format when `text` is a CSV header, `None` when it is a plain list's first
/// line.
fn header(text: &str) -> Result<Option<Format>, HeaderError> {
    let mut fallback = None;
    for delimiter in [b',', b';'] {
        let present = text.as_bytes().contains(&delimiter);
        if !present && delimiter == b';' {
            continue;
        }
        let mut fields = Fields::new(delimiter);
        fields.parse(text.as_bytes());
        let columns = (0..fields.len())
            .map(|index| fields.get(index).map(str::to_owned))
            .collect::<Result<Vec<String>, LineError>>()
            .unwrap_or_default();
        let find = |name: &str| columns.iter().position(|c| c.eq_ignore_ascii_case(name));
        if let Some(number_column) = find("number").or_else(|| find("phone")) {
            check_columns(&columns)?;
            return Ok(Some(Format::Csv {
                delimiter,
                columns,
                number_column,
            }));
        }
        if fallback.is_none() && present {
            fallback = Some(columns);
        }
    }
    match fallback {
        // Separators and not a single digit: a header, not a number with a stray comma.
        Some(columns) if !text.bytes().any(|byte| byte.is_ascii_digit()) => {
            Err(HeaderError::NoNumberColumn { columns })
        }
        _ => Ok(None),
    }
}

fn check_columns(columns: &[String]) -> Result<(), HeaderError> {
    for (index, column) in columns.iter().enumerate() {
        if !is_variable_name(column) {
            return Err(HeaderError::BadColumn {
                column: column.clone(),
            });
        }
        if columns[..index]
            .iter()
            .any(|earlier| earlier.eq_ignore_ascii_case(column))
        {
            return Err(HeaderError::DuplicateColumn {
                column: column.clone(),
            });
        }
    }
    Ok(())
}

fn parse_csv(
    fields: &mut Fields,
    text: &str,
    columns: &[String],
    number_column: usize,
) -> Result<(String, BTreeMap<String, String>), LineError> {
    // Lines are parsed one at a time, so an odd count of quotes is a quoted field that
    // tried to span lines; the parser would take it to the end of the line silently.
    if text.bytes().filter(|&byte| byte == b'"').count() % 2 == 1 {
        return Err(LineError::UnterminatedQuote);
    }
    fields.parse(text.as_bytes());
    if fields.len() != columns.len() {
        return Err(LineError::FieldCount {
            found: fields.len(),
            expected: columns.len(),
        });
    }
    let number = normalize(fields.get(number_column)?)?;
    let mut data = BTreeMap::new();
    for (index, name) in columns.iter().enumerate() {
        if index != number_column {
            data.insert(name.clone(), fields.get(index)?.to_owned());
        }
    }
    Ok((number, data))
}

/// The fields of one CSV line, split by csv-core (the csv crate's parser) into buffers
/// reused from line to line: a `csv::Reader` per line costs more than the rest of the
/// import together, and one reader across lines would carry a broken line's state into
/// the next.
struct Fields {
    parser: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    len: usize,
}

impl Fields {
    fn new(delimiter: u8) -> Fields {
        Fields {
            parser: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            out: Vec::new(),
            ends: Vec::new(),
            len: 0,
        }
    }

    fn parse(&mut self, line: &[u8]) {
        use csv_core::ReadRecordResult;
        self.parser.reset();
        // Unquoting only shrinks a line, and a line has at most one field per byte plus
        // one: these sizes are enough; the growth below is for safety only.
        self.out.resize(line.len() + 1, 0);
        self.ends.resize(line.len() + 2, 0);
        let (mut input, mut written, mut ended) = (line, 0, 0);
        loop {
            let (result, read, out, ends) =
                self.parser
                    .read_record(input, &mut self.out[written..], &mut self.ends[ended..]);
            input = &input[read..];
            written += out;
            ended += ends;
            match result {
                // The next call passes the empty rest: the end of this line's data.
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => self.out.resize(self.out.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        self.len = ended;
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Field `index`, trimmed.
    fn get(&self, index: usize) -> Result<&str, LineError> {
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        let end = self.ends.get(index).copied().unwrap_or(start);
        let bytes = self.out.get(start..end).unwrap_or_default();
        std::str::from_utf8(bytes)
            .map(str::trim)
            .map_err(|_| LineError::NotText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numbers::InvalidNumber;
    use std::io::{BufReader, Read};

    fn read(input: &[u8]) -> Vec<Line> {
        NumberReader::new(input)
            .unwrap()
            .map(|line| line.unwrap())
            .collect()
    }

    fn entry(line: u64, number: &str) -> Line {
        Line::Entry(NumberEntry {
            line,
            number: number.to_owned(),
            data: BTreeMap::new(),
        })
    }

    fn reasons(lines: &[Line]) -> Vec<(u64, LineError)> {
        lines
            .iter()
            .filter_map(|line| match line {
                Line::Invalid(bad) => Some((bad.line, bad.reason.clone())),
                Line::Entry(_) => None,
            })
            .collect()
    }

    #[test]
    fn plain_list_with_blank_and_comment_lines() {
        let lines = read(b"# campaign list\n\n5551001\n   \n+1 555 1002\n# done\n");
        assert_eq!(lines, vec![entry(3, "5551001"), entry(5, "15551002")]);
    }

    #[test]
    fn plain_list_with_crlf_and_bom_and_no_final_newline() {
        let lines = read(b"\xEF\xBB\xBF5551001\r\n5551002\r\n\r\n5551003");
        assert_eq!(
            lines,
            vec![
                entry(1, "5551001"),
                entry(2, "5551002"),
                entry(4, "5551003")
            ]
        );
    }

    #[test]
    fn a_comma_in_a_plain_list_is_an_invalid_line() {
        let lines = read(b"5551001\n5551002,Alice\n");
        assert_eq!(
            reasons(&lines),
            vec![(2, LineError::Number(InvalidNumber::Character(',')))]
        );
    }

    #[test]
    fn mixed_valid_and_invalid_lines_report_their_line_numbers() {
        let input = b"5551001\nabc\n\n5551002\n1000&Local/x\n555\xff1\n12\n100@evil\n5551003\n";
        let lines = read(input);
        let entries: Vec<u64> = lines
            .iter()
            .filter_map(|line| match line {
                Line::Entry(entry) => Some(entry.line),
                Line::Invalid(_) => None,
            })
            .collect();
        assert_eq!(entries, vec![1, 4, 9]);
        assert_eq!(
            reasons(&lines),
            vec![
                (2, LineError::Number(InvalidNumber::Character('a'))),
                (5, LineError::Number(InvalidNumber::Character('&'))),
                (6, LineError::NotText),
                (7, LineError::Number(InvalidNumber::TooShort(2))),
                (8, LineError::Number(InvalidNumber::Character('@'))),
            ]
        );
        let Line::Invalid(bad) = &lines[3] else {
            panic!("line 5 is invalid: {lines:?}")
        };
        assert_eq!(bad.excerpt, "1000&Local/x");
    }

    #[test]
    fn csv_with_number_column_and_data() {
        let input = b"Name,NUMBER,customer_id\nAlice,+1 555 1001,17\n\"Bob, Jr.\", 5551002 ,\"18\"\nCarol,555x,19\nDan,5551003\n";
        let mut reader = NumberReader::new(&input[..]).unwrap();
        assert_eq!(
            reader.format(),
            &Format::Csv {
                delimiter: b',',
                columns: vec!["Name".into(), "NUMBER".into(), "customer_id".into()],
                number_column: 1,
            }
        );
        let lines: Vec<Line> = reader.by_ref().map(Result::unwrap).collect();
        let Line::Entry(alice) = &lines[0] else {
            panic!("{lines:?}")
        };
        assert_eq!((alice.line, alice.number.as_str()), (2, "15551001"));
        assert_eq!(
            alice.data,
            BTreeMap::from([
                ("Name".to_owned(), "Alice".to_owned()),
                ("customer_id".to_owned(), "17".to_owned())
            ])
        );
        let Line::Entry(bob) = &lines[1] else {
            panic!("{lines:?}")
        };
        assert_eq!(bob.data["Name"], "Bob, Jr.");
        assert_eq!(bob.number, "5551002");
        assert_eq!(
            reasons(&lines),
            vec![
                (4, LineError::Number(InvalidNumber::Character('x'))),
                (
                    5,
                    LineError::FieldCount {
                        found: 2,
                        expected: 3
                    }
                ),
            ]
        );
        assert_eq!((reader.entries(), reader.invalid()), (2, 2));
    }

    #[test]
    fn semicolon_csv_with_phone_column_crlf_and_bom() {
        let input =
            b"\xEF\xBB\xBFphone;city\r\n555 1001;Paris\r\n5551002;\"Lyon; Rh\xC3\xB4ne\"\r\n";
        let lines = read(input);
        let numbers: Vec<(&str, &str)> = lines
            .iter()
            .map(|line| match line {
                Line::Entry(entry) => (entry.number.as_str(), entry.data["city"].as_str()),
                Line::Invalid(bad) => panic!("{bad}"),
            })
            .collect();
        assert_eq!(
            numbers,
            vec![("5551001", "Paris"), ("5551002", "Lyon; Rhône")]
        );
    }

    #[test]
    fn csv_line_with_an_open_quote_is_invalid() {
        let lines = read(b"number,note\n5551001,\"half\n5551002,ok\n");
        assert_eq!(reasons(&lines), vec![(2, LineError::UnterminatedQuote)]);
        assert!(matches!(&lines[1], Line::Entry(entry) if entry.line == 3));
    }

    #[test]
    fn header_without_number_column_names_its_columns() {
        let error = NumberReader::new(&b"name,email\nAlice,a@example.com\n"[..])
            .err()
            .unwrap();
        assert!(
            matches!(&error, HeaderError::NoNumberColumn { columns } if columns == &["name", "email"])
        );
        assert!(error.to_string().contains("name, email"), "{error}");
    }

    #[test]
    fn header_columns_must_be_variable_names() {
        for (input, bad) in [
            (&b"number,first name\n"[..], "first name"),
            (b"number,1st\n", "1st"),
            (b"number,,x\n", ""),
            (b"phone;a-b\n", "a-b"),
        ] {
            let error = NumberReader::new(input).err().unwrap();
            assert!(
                matches!(&error, HeaderError::BadColumn { column } if column == bad),
                "{error}"
            );
        }
        let error = NumberReader::new(&b"number,Name,NAME\n"[..]).err().unwrap();
        assert!(
            matches!(error, HeaderError::DuplicateColumn { .. }),
            "{error}"
        );
    }

    #[test]
    fn empty_inputs_are_refused() {
        for input in [
            &b""[..],
            b"\n\n",
            b"# only a comment\r\n  \r\n",
            b"\xEF\xBB\xBF",
        ] {
            assert!(matches!(
                NumberReader::new(input).err(),
                Some(HeaderError::Empty)
            ));
        }
    }

    /// A reader of `len` bytes of `fill`, generated as it is read: the test itself holds
    /// no long line either.
    struct Generated {
        fill: u8,
        left: u64,
    }

    impl Read for Generated {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            out[..n].fill(self.fill);
            self.left -= n as u64;
            Ok(n)
        }
    }

    #[test]
    fn a_ten_megabyte_line_is_one_invalid_line_read_in_bounded_memory() {
        let long = 10 * 1024 * 1024;
        let input = b"5551001\n"
            .chain(Generated {
                fill: b'7',
                left: long,
            })
            .chain(&b"\n5551002\n"[..])
            .chain(Generated {
                fill: b'#',
                left: long,
            })
            .chain(&b"\n5551003"[..]);
        let mut reader = NumberReader::new(BufReader::with_capacity(8192, input)).unwrap();
        let mut lines = Vec::new();
        for line in reader.by_ref() {
            lines.push(line.unwrap());
        }
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[0], entry(1, "5551001"));
        assert_eq!(lines[2], entry(3, "5551002"));
        assert_eq!(lines[3], entry(5, "5551003"));
        let Line::Invalid(bad) = &lines[1] else {
            panic!("{lines:?}")
        };
        assert_eq!(bad.line, 2);
        assert_eq!(
            bad.reason,
            LineError::TooLong {
                max: MAX_LINE_BYTES,
                len: long
            }
        );
        assert!(bad.reason.to_string().contains("longer than 16384 bytes"));
        assert_eq!(bad.excerpt, format!("{}…", "7".repeat(60)));
        assert!(
            reader.lines.buf.capacity() <= 2 * MAX_LINE_BYTES,
            "line buffer grew to {}",
            reader.lines.buf.capacity()
        );
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_whole_even_with_crlf() {
        let mut input = vec![b' '; MAX_LINE_BYTES - 7];
        input.extend_from_slice(b"5551001\r\n5551002\n");
        let lines = read(&input);
        assert_eq!(lines, vec![entry(1, "5551001"), entry(2, "5551002")]);
    }

    #[test]
    fn binary_junk_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..200 {
            let len = (round * 97) % 5000;
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    // xorshift: reproducible bytes without a dependency.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            if let Ok(reader) = NumberReader::new(&junk[..]) {
                for line in reader {
                    if let Line::Invalid(bad) = line.unwrap() {
                        assert!(bad.excerpt.chars().count() <= 61);
                        assert!(!bad.excerpt.chars().any(char::is_control));
                    }
                }
            }
        }
    }

    #[test]
    fn junk_with_a_number_header_never_panics() {
        let mut input = b"number;x\n".to_vec();
        input.extend((0u32..20_000).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        let reader = NumberReader::new(&input[..]).unwrap();
        assert!(matches!(
            reader.format(),
            Format::Csv {
                delimiter: b';',
                ..
            }
        ));
        for line in reader {
            line.unwrap();
        }
    }

    #[test]
    fn read_errors_end_the_iteration() {
        struct Failing(bool);
        impl Read for Failing {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    return Err(io::Error::other("disk gone"));
                }
                out[..8].copy_from_slice(b"5551001\n");
                Ok(8)
            }
        }
        let mut reader = NumberReader::new(BufReader::new(Failing(false))).unwrap();
        assert!(matches!(reader.next(), Some(Ok(Line::Entry(_)))));
        assert!(matches!(reader.next(), Some(Err(_))));
        assert!(reader.next().is_none());
    }
}
