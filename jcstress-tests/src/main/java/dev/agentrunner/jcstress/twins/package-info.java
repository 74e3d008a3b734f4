/**
 * Broken twins: each seed bug rebuilt in a few lines of Java and driven by the same harness shape
 * as the real code it shadows. Their bad outcome is marked {@code ACCEPTABLE_INTERESTING}, and
 * the gate ({@code run-gate.sh}) fails when it was never observed: that is the proof that the
 * harness in {@link dev.agentrunner.jcstress} can see the bug it guards against.
 *
 * <p>Nothing here is used by the library; never copy it.
 */
package dev.agentrunner.jcstress.twins;
