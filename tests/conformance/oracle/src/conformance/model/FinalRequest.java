package conformance.model;

import java.math.BigDecimal;
import java.util.UUID;

/** A final bean: no type id at the root; its BigDecimal and Owner fields still get one. */
public final class FinalRequest {
  private String name;
  private UUID id;
  private Stage stage;
  private BigDecimal amount;
  private Owner owner;

  public FinalRequest() {}

  public String getName() {
    return name;
  }

  public void setName(String name) {
    this.name = name;
  }

  public UUID getId() {
    return id;
  }

  public void setId(UUID id) {
    this.id = id;
  }

  public Stage getStage() {
    return stage;
  }

  public void setStage(Stage stage) {
    this.stage = stage;
  }

  public BigDecimal getAmount() {
    return amount;
  }

  public void setAmount(BigDecimal amount) {
    this.amount = amount;
  }

  public Owner getOwner() {
    return owner;
  }

  public void setOwner(Owner owner) {
    this.owner = owner;
  }
}
