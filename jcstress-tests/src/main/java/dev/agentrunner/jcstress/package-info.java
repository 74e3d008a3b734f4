/**
 * jcstress harnesses that drive the real classes of {@code agentrunner-core} and prove the
 * invariants of the design (I1, I2, I6, I7, I9). Every outcome a harness does not list as
 * acceptable is FORBIDDEN, so a run that sees one fails the gate ({@code run-gate.sh}).
 *
 * <p>The package {@link dev.agentrunner.jcstress.twins} holds their broken twins: the same
 * harness shapes over deliberately buggy code, whose bad outcome must be observed.
 */
package dev.agentrunner.jcstress;
