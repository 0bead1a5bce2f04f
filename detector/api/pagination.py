from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        """The asked size; one that is not a whole number from 1 to the maximum is a 400, not silently ignored."""
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        if not value.isdecimal() or not 1 <= int(value) <= self.max_page_size:
            message = f"A whole number from 1 to {self.max_page_size}."
            raise serializers.ValidationError({self.page_size_query_param: [message]})
        return int(value)

    def get_page_number(self, request, paginator):
        """A page number that is not a whole number is a 400; one past the end stays DRF's 404."""
        value = request.query_params.get(self.page_query_param, "1")
        if not value.isdecimal():
            raise serializers.ValidationError({self.page_query_param: ["A whole number from 1."]})
        return value

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"].update(minimum=1)
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters
