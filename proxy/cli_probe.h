/*
 * cli_probe: "stsproxy probe HOST[:PORT] | --domain DOMAIN": connect to a
 * server as a sender would, EHLO, try STARTTLS even when it is not
 * advertised, complete and verify the TLS handshake, and report every
 * downgrade signal detect.h knows. The tool an administrator runs from the
 * box they suspect is behind a stripping middlebox.
 *
 * Exit codes: 0 no finding of severity warning or above, 1 a downgrade
 * finding (warning/alert), 2 a target could not be probed, 3 usage.
 */
#ifndef STSPROXY_CLI_PROBE_H
#define STSPROXY_CLI_PROBE_H

int cli_probe_main(int argc, char *argv[]);

#endif
