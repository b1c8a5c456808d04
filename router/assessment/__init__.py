"""Department assessment (考核): scorecards per department, district or street."""
