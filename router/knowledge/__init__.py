"""Knowledge base (知识库): answer articles and the suggestions agents see while they type."""
