
      export type PossibleTypesResultData = {
  "possibleTypes": {
    "Block": [
      "BannerBlock",
      "CallToActionBlock",
      "GenericBlock",
      "HeroBlock",
      "ProductGridBlock",
      "RecommendationsBlock",
      "RichTextBlock",
      "TestimonialBlock"
    ]
  }
};
      const result: PossibleTypesResultData = {
  "possibleTypes": {
    "Block": [
      "BannerBlock",
      "CallToActionBlock",
      "GenericBlock",
      "HeroBlock",
      "ProductGridBlock",
      "RecommendationsBlock",
      "RichTextBlock",
      "TestimonialBlock"
    ]
  }
};
      export default result;
    