package dev.agentrunner;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.methods;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.domain.JavaMethod;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchCondition;
import com.tngtech.archunit.lang.ConditionEvents;
import com.tngtech.archunit.lang.SimpleConditionEvent;
import org.junit.jupiter.api.Test;

/** Keeps the API small and honest: no internal types in public signatures, no JDBC in core. */
class ArchitectureTest {
  private static final JavaClasses CORE = new ClassFileImporter()
      .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
      .importPackages("dev.agentrunner");

  @Test
  void publicApiSignaturesNeverExposeInternalTypes() {
    methods().that().arePublic()
        .and().areDeclaredInClassesThat().resideOutsideOfPackage("dev.agentrunner.internal..")
        .and().areDeclaredInClassesThat().arePublic()
        .should(new ArchCondition<JavaMethod>("not mention dev.agentrunner.internal types") {
          @Override
          public void check(JavaMethod method, ConditionEvents events) {
            for (JavaClass type : method.getAllInvolvedRawTypes()) {
              if (type.getPackageName().startsWith("dev.agentrunner.internal")) {
                events.add(SimpleConditionEvent.violated(method,
                    method.getFullName() + " exposes " + type.getName()));
              }
            }
          }
        })
        .check(CORE);
  }

  @Test
  void coreNeverTouchesJdbc() {
    noClasses().should().dependOnClassesThat().resideInAnyPackage("java.sql..", "javax.sql..")
        .check(CORE);
  }

  @Test
  void storeTiersSeeOnlyTheApiAndTheSpi() {
    noClasses().that().resideInAnyPackage("dev.agentrunner.spi..", "dev.agentrunner.memory..")
        .should().dependOnClassesThat().resideInAPackage("dev.agentrunner.internal..")
        .because("store authors see only the API and the SPI")
        .check(CORE);
  }
}
