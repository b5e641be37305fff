//! udp-ping: `PING...` is answered with `PONG...`, anything else with `PONG`.

/// Appends the reply to `datagram` to `reply`: `PONG` followed by whatever
/// came after a leading `PING` (`PING 17` -> `PONG 17`), or just `PONG`.
pub fn answer(datagram: &[u8], reply: &mut Vec<u8>) {
    reply.extend_from_slice(b"PONG");
    if let Some(rest) = datagram.strip_prefix(b"PING") {
        reply.extend_from_slice(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_to(datagram: &[u8]) -> Vec<u8> {
        let mut reply = Vec::new();
        answer(datagram, &mut reply);
        reply
    }

    #[test]
    fn ping_becomes_pong_with_the_rest() {
        assert_eq!(reply_to(b"PING"), b"PONG");
        assert_eq!(reply_to(b"PING 17"), b"PONG 17");
        assert_eq!(reply_to(b"PINGPING\xff"), b"PONGPING\xff");
    }

    #[test]
    fn anything_else_gets_a_bare_pong() {
        assert_eq!(reply_to(b""), b"PONG");
        assert_eq!(reply_to(b"PIN"), b"PONG");
        assert_eq!(reply_to(b"ping 17"), b"PONG");
        assert_eq!(reply_to(b" PING"), b"PONG");
    }

    #[test]
    fn appends_to_what_is_there() {
        let mut reply = b"x".to_vec();
        answer(b"PING!", &mut reply);
        assert_eq!(reply, b"xPONG!");
    }
}
