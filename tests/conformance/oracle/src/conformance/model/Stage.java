package conformance.model;

/** An enum without constant bodies: final, so Jackson writes it without a type id at the root. */
public enum Stage {
  RAWLS_WORKSPACE,
  MC_WORKSPACE,
  DELETING
}
