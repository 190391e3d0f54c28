package conformance.model;

/** A non-final bean, used on its own and as a field of other classes. */
public class Owner {
  private String email;
  private String subjectId;

  public Owner() {}

  public String getEmail() {
    return email;
  }

  public void setEmail(String email) {
    this.email = email;
  }

  public String getSubjectId() {
    return subjectId;
  }

  public void setSubjectId(String subjectId) {
    this.subjectId = subjectId;
  }
}
